"""daphne's reaper survives an application's late error (server.patches.daphne_reaper)."""

from __future__ import annotations

import asyncio

import pytest
from daphne.http_protocol import WebRequest
from daphne.server import Server

from llm_gateway.server.patches import daphne_reaper


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
    daphne_reaper.check()
    daphne_reaper.install()


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


@pytest.mark.e2e
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("launcher", [True, False], ids=["launcher", "plain-daphne"])
def test_late_errors_end_their_answers_and_the_server_goes_on(gateway_env, server_logs, launcher):
    """Under daphne, an application error after the first byte made the checker raise on each
    round: the client then waited for an answer that never ended, and no connection was
    reaped again. Patched, each such answer is cut at once (the client sees it broken), and
    the next ones too."""
    import httpx

    from . import servers

    server = servers.daphne(
        server_logs, gateway_env, launcher=launcher, application="tests.late_error_asgi:application"
    ).start()
    try:
        for _ in range(3):  # the checker survives each: the next one is cut as well
            with pytest.raises((httpx.RemoteProtocolError, httpx.ReadError)):  # cut, not hanging
                httpx.get(server.url + "/late-error", timeout=30)
        assert httpx.get(server.url + "/live", timeout=30).status_code == 200
    finally:
        server.stop()
    assert "the application failed after its first byte" in server.output()
