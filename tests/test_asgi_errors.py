import asyncio
import json
import logging

from llm_gateway.asgi.errors import ErrorMiddleware
from llm_gateway.errors import EngineDeadError

from .asgi_helpers import call, http_scope


async def dead_engine(scope, receive, send):
    raise EngineDeadError("The engine is unavailable: gone.")


async def broken(scope, receive, send):
    raise RuntimeError("a bug with /secret/path in it")


def test_gateway_errors_become_json_and_a_dead_engine_logs_once_a_second(caplog, monkeypatch):
    app = ErrorMiddleware(dead_engine)  # its own log throttle: no other test's state

    async def many():
        return [await call(app, http_scope()) for _ in range(50)]

    with caplog.at_level(logging.WARNING, "llm_gateway.errors"):
        results = asyncio.run(many())
    assert {r[0] for r in results} == {503}
    assert json.loads(results[0][2])["error"]["code"] == "engine_unavailable"
    (record,) = caplog.records
    assert record.getMessage() == "GET /v1/models -> 503: The engine is unavailable: gone."


def test_unexpected_exception_is_a_json_500_without_details(caplog):
    with caplog.at_level(logging.ERROR, "llm_gateway.errors"):
        status, headers, body, _ = asyncio.run(call(ErrorMiddleware(broken), http_scope()))
    assert status == 500 and headers[b"content-type"] == [b"application/json"]
    error = json.loads(body)["error"]
    assert error["message"] == "Internal server error." and "/secret/path" not in body.decode()
    (record,) = caplog.records  # the details go to the log, not to the client
    assert record.getMessage().startswith("unhandled error in") and record.exc_info
    assert caplog.records  # the traceback goes to the log, not to the client
