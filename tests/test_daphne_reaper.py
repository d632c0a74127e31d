"""daphne's reaper survives an application's late error (llm_gateway.daphne_reaper)."""

from __future__ import annotations

import asyncio

import pytest
from daphne.http_protocol import WebRequest
from daphne.server import Server

from llm_gateway.daphne_reaper import keep_reaping


class Transport:
    def __init__(self) -> None:
        self.aborted = False

    def abortConnection(self) -> None:  # noqa: N802 (Twisted's name)
        self.aborted = True


class Channel:
    def __init__(self) -> None:
        self.transport = Transport()


def started_request() -> WebRequest:
    """A request whose response has begun (its status line is out)."""
    request = WebRequest.__new__(WebRequest)
    request._response_started = True
    request.finished = False
    request.channel = Channel()
    return request


@pytest.fixture(autouse=True)
def patched() -> None:
    keep_reaping()


def test_an_error_after_the_first_byte_aborts_the_connection_instead_of_raising():
    request = started_request()
    request.handle_exception(RuntimeError("the application failed mid-answer"))
    assert request.channel.transport.aborted  # the client sees a broken answer; reaped


def test_the_checker_reaps_the_rest_and_goes_on_after_such_an_error(monkeypatch):
    from twisted.internet import reactor

    later = []
    monkeypatch.setattr(reactor, "callLater", lambda delay, f: later.append(f))
    loop = asyncio.new_event_loop()
    failed = loop.create_future()
    failed.set_exception(RuntimeError("late"))
    done = loop.create_future()
    done.set_result(None)
    server = Server.__new__(Server)
    server.application_close_timeout = 10
    request, gone = started_request(), object()
    server.connections = {
        request: {"application_instance": failed},  # the client still there
        gone: {"application_instance": done, "disconnected": 1.0},
    }
    server.application_checker()
    loop.close()
    assert gone not in server.connections  # the round went on and reaped it
    assert request.channel.transport.aborted
    assert later  # and the checker runs again
