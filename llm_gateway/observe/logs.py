"""Logging configuration, the request-id filter, the access-log filter and the JSON formatter.

``build_logging_config()`` follows vLLM's ``get_uvicorn_log_config`` order: 1) a JSON dictConfig
file (``LLM_GATEWAY_LOG_CONFIG_FILE``) when it loads, 2) otherwise our config whose access-log
filter drops the endpoints of ``LLM_GATEWAY_DISABLE_ACCESS_LOG_FOR_ENDPOINTS``, 3) the defaults.
It runs while settings are being imported, so it reads ``conf``'s properties from the
environment alone; a value that cannot be read is said on stderr here (logging is not
configured yet) and reported by the system check (``llm_gateway.E003``) at start-up.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
from typing import Any

import orjson

from ..conf import Settings, parse_endpoints
from ..ingress.request_id import get_request_id

ACCESS_LOGGER = "llm_gateway.access"
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"


def _read(settings: Settings, name: str, default: Any) -> Any:
    """A setting for the logging configuration; an unreadable one gives its default."""
    try:
        return getattr(settings, name)
    except ValueError as exc:
        print(f"llm_gateway: LLM_GATEWAY_{name}: {exc}; using {default!r}", file=sys.stderr)
        return default


class RequestIdFilter(logging.Filter):
    """Puts the id of the request being handled (or '-') on every record."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "request_id"):
            record.request_id = get_request_id() or "-"
        return True


class AccessLogFilter(logging.Filter):
    """Drops access lines for exactly the listed paths (vLLM's UvicornAccessLogFilter)."""

    def __init__(self, excluded_paths: list[str] | str | None = None) -> None:
        super().__init__()
        self.excluded = frozenset(parse_endpoints(excluded_paths or []))

    def filter(self, record: logging.LogRecord) -> bool:
        return getattr(record, "path", None) not in self.excluded


_RESERVED = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
}


_second: tuple[int, str] = (-1, "")  # one tuple: replaced whole, so threads see a pair


def utc_time(record: logging.LogRecord) -> str:
    """The record's time in UTC, ISO 8601 with milliseconds. The seconds are formatted once
    per second: strftime on every line was more than half of a line's formatting time."""
    global _second
    second = int(record.created)
    cached = _second
    if cached[0] != second:
        cached = _second = (second, time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second)))
    return f"{cached[1]}.{int(record.msecs):03d}Z"


class TextFormatter(logging.Formatter):
    """The text format, its time as in the JSON lines (unless a ``datefmt`` is given)."""

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:
        return super().formatTime(record, datefmt) if datefmt else utc_time(record)


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request_id, message, and any extras."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": utc_time(record),
            "level": record.levelname,
            "logger": record.name,
            "process": record.process,
            "request_id": getattr(record, "request_id", None),
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RESERVED and key not in entry:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return orjson.dumps(entry, default=str).decode()


def default_config(
    disabled_endpoints: list[str] | None = None, log_format: str = "text", level: str = "INFO"
) -> dict[str, Any]:
    formatter: dict[str, Any] = (
        {"()": "llm_gateway.observe.logs.JsonFormatter"}
        if log_format == "json"
        else {"()": "llm_gateway.observe.logs.TextFormatter", "format": TEXT_FORMAT}
    )
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {
            "request_id": {"()": "llm_gateway.observe.logs.RequestIdFilter"},
            "access": {
                "()": "llm_gateway.observe.logs.AccessLogFilter",
                "excluded_paths": disabled_endpoints or [],
            },
        },
        "formatters": {"default": formatter},
        "handlers": {
            "console": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stderr",
                "formatter": "default",
                "filters": ["request_id"],
            },
            "access": {
                "class": "logging.StreamHandler",
                "stream": "ext://sys.stdout",
                "formatter": "default",
                "filters": ["request_id", "access"],
            },
        },
        "loggers": {
            "llm_gateway": {"handlers": ["console"], "level": level, "propagate": False},
            ACCESS_LOGGER: {"handlers": ["access"], "level": level, "propagate": False},
            "django": {"handlers": ["console"], "level": "WARNING", "propagate": False},
        },
        "root": {"handlers": ["console"], "level": "WARNING"},
    }


def build_logging_config(environ: dict[str, str] | None = None) -> dict[str, Any]:
    """The LOGGING dict for Django settings, from LLM_GATEWAY_LOG_* environment variables."""
    settings = Settings(environ=os.environ if environ is None else environ)
    path = _read(settings, "LOG_CONFIG_FILE", "")
    if path:
        try:
            with open(path, encoding="utf-8") as file:
                config = json.load(file)
            if not isinstance(config, dict) or "version" not in config:
                raise ValueError("not a logging dictConfig (no 'version' key)")
            return dict(config)
        except (OSError, ValueError) as exc:
            print(  # logging is not configured yet: this is the one way to say it
                f"llm_gateway: ignoring LLM_GATEWAY_LOG_CONFIG_FILE={path!r} ({exc}); "
                "using the default logging configuration",
                file=sys.stderr,
            )
    config = default_config(
        _read(settings, "DISABLE_ACCESS_LOG_FOR_ENDPOINTS", []),
        _read(settings, "LOG_FORMAT", "text"),
        _read(settings, "LOG_LEVEL", "INFO"),
    )
    if not _read(settings, "ACCESS_LOG", True):
        config["loggers"][ACCESS_LOGGER]["level"] = "WARNING"
    return config
