import json
import logging
import logging.config
import time

from llm_gateway.conf import parse_endpoints
from llm_gateway.ingress.request_id import request_id_var
from llm_gateway.observe.logs import (
    TEXT_FORMAT,
    AccessLogFilter,
    JsonFormatter,
    RequestIdFilter,
    TextFormatter,
    build_logging_config,
)


def record(**extra):
    rec = logging.LogRecord(
        "llm_gateway.access", logging.INFO, __file__, 1, "hello %s", ("x",), None
    )
    for key, value in extra.items():
        setattr(rec, key, value)
    return rec


def test_parse_endpoints_trims_drops_empty_and_ignores_query():
    assert parse_endpoints(" /health , ,/metrics?x=1,") == ["/health", "/metrics"]
    assert parse_endpoints([]) == [] and parse_endpoints(["/a "]) == ["/a"]


def test_access_filter_drops_exactly_the_listed_paths():
    f = AccessLogFilter("/health,/metrics")
    assert not f.filter(record(path="/health"))
    assert f.filter(record(path="/health/deep"))
    assert f.filter(record(path="/healthz"))
    assert f.filter(record(path="/v1/models"))


def test_request_id_filter_reads_the_contextvar():
    token = request_id_var.set("rid-7")
    try:
        rec = record()
        RequestIdFilter().filter(rec)
        assert rec.request_id == "rid-7"
    finally:
        request_id_var.reset(token)
    rec = record()
    RequestIdFilter().filter(rec)
    assert rec.request_id == "-"


def test_json_formatter_one_object_per_line_with_extras():
    line = JsonFormatter().format(record(request_id="r1", status=200, path="/v1/x"))
    entry = json.loads(line)
    assert "\n" not in line
    assert entry["message"] == "hello x" and entry["request_id"] == "r1"
    assert (
        entry["status"] == 200
        and entry["path"] == "/v1/x"
        and entry["logger"] == "llm_gateway.access"
    )


def test_times_are_utc_iso_with_milliseconds_across_second_boundaries():
    formatter = TextFormatter(TEXT_FORMAT)
    times = []
    for created in (1_700_000_000.999, 1_700_000_001.0, 1_700_000_001.5, 1_699_999_999.25):
        rec = record(request_id="r")
        rec.created, rec.msecs = created, int((created - int(created)) * 1000)
        times.append(formatter.format(rec).split(" ")[0])
        assert json.loads(JsonFormatter().format(rec))["time"] == times[-1]
    assert times == [
        "2023-11-14T22:13:20.999Z",
        "2023-11-14T22:13:21.000Z",
        "2023-11-14T22:13:21.500Z",
        "2023-11-14T22:13:19.250Z",
    ]
    rec = record(request_id="r")
    dated = TextFormatter("%(asctime)s", datefmt="%Y").format(rec)
    assert dated == time.strftime("%Y", time.localtime(rec.created))


def test_config_file_wins_when_it_loads(tmp_path):
    path = tmp_path / "log.json"
    path.write_text(json.dumps({"version": 1, "root": {"level": "ERROR"}}))
    config = build_logging_config({"LLM_GATEWAY_LOG_CONFIG_FILE": str(path)})
    assert config == {"version": 1, "root": {"level": "ERROR"}}


def test_missing_or_invalid_file_warns_once_and_falls_back(tmp_path, capsys):
    for content in (None, "{not json", '["a list"]'):
        path = tmp_path / "bad.json"
        if content is not None:
            path.write_text(content)
        config = build_logging_config(
            {
                "LLM_GATEWAY_LOG_CONFIG_FILE": str(path),
                "LLM_GATEWAY_DISABLE_ACCESS_LOG_FOR_ENDPOINTS": "/health",
            }
        )
        assert config["filters"]["access"]["excluded_paths"] == ["/health"]
        err = capsys.readouterr().err
        assert err.count("ignoring LLM_GATEWAY_LOG_CONFIG_FILE") == 1
        path.unlink(missing_ok=True)


def test_default_config_applies_and_json_format(capsys):
    config = build_logging_config({"LLM_GATEWAY_LOG_FORMAT": "json"})
    assert config["formatters"]["default"] == {"()": "llm_gateway.observe.logs.JsonFormatter"}
    logging.config.dictConfig(build_logging_config({}))  # valid for dictConfig
    off = build_logging_config({"LLM_GATEWAY_ACCESS_LOG": "false"})
    assert off["loggers"]["llm_gateway.access"]["level"] == "WARNING"
