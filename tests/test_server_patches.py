"""Each patch of daphne, Twisted, autobahn and uvloop checks its target before it is
installed (server.patches.guard): here against what is installed (a test fails the day a
target changes), and against changed targets, which it must refuse loudly."""

from __future__ import annotations

import importlib
import importlib.metadata
import re
import tomllib
import types
from pathlib import Path

import daphne.server  # noqa: F401  (installs the reactor the patches expect)
import pytest

from llm_gateway.server import patches
from llm_gateway.server.checks import check_server_patches
from llm_gateway.server.patches import (
    daphne_close,
    daphne_drain,
    daphne_flow,
    daphne_reaper,
    guard,
    twisted_content_type,
    uvloop_poll_errors,
)

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.parametrize("patch", patches.ALL, ids=lambda p: p.__name__.rsplit(".", 1)[-1])
def test_each_patch_fits_what_is_installed(patch):
    patch.check()  # raises PatchRefused with the reason once its target changes


def test_the_tested_versions_are_the_declared_bounds():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    extras = project["optional-dependencies"].values()
    declared = project["dependencies"] + [d for ds in extras for d in ds]
    for distribution, (low, high) in guard.TESTED.items():
        (line,) = [d for d in declared if re.match(rf"{distribution}\b", d, re.I)]
        assert f">={low},<{high}" in line.replace(" ", ""), (distribution, line)


def test_a_version_not_tested_is_refused(monkeypatch):
    real = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "4.3.0" if name == "daphne" else real(name),
    )
    with pytest.raises(guard.PatchRefused, match=r"daphne 4\.3\.0 is not a version"):
        daphne_reaper.check()
    found = patches.problems(with_uvloop=True)
    assert len(found) == 4 and all("daphne 4.3.0" in problem for problem in found)
    (error,) = {m.id for m in check_server_patches()}
    assert error == "llm_gateway.E010"


# What each patch relies on, taken away: its check must name it.
CHANGES = [
    (daphne_close, "daphne.ws_protocol", "WebSocketProtocol", "sendCloseFrame"),
    (daphne_flow, "twisted.web.http", "HTTPChannel", "_requestProducer"),
    (daphne_flow, "daphne.server", "Server", "handle_reply"),
    (daphne_reaper, "daphne.http_protocol", "WebRequest", "handle_exception"),
    (daphne_drain, "daphne.server", "Server", "listen_success"),
    (twisted_content_type, "twisted.web", "http", "_parseContentType"),
    (uvloop_poll_errors, "twisted.internet.asyncioreactor", "AsyncioSelectorReactor", "addReader"),
]


@pytest.mark.parametrize(("patch", "module", "owner", "name"), CHANGES)
def test_a_target_that_changed_is_refused(monkeypatch, patch, module, owner, name):
    parent = importlib.import_module(module)
    target = getattr(parent, owner)
    if not isinstance(target, type):  # a module (Twisted's are proxies): one without the name
        kept = {key: value for key, value in vars(target).items() if key != name}
        monkeypatch.setattr(parent, owner, types.SimpleNamespace(**kept))
    for holder in getattr(target, "__mro__", ()):  # a class: gone from its bases too
        if name in vars(holder):
            monkeypatch.delattr(holder, name)
    with pytest.raises(guard.PatchRefused, match=name):
        patch.check()


def test_an_instance_attribute_no_longer_set_is_refused(monkeypatch):
    from daphne.http_protocol import WebRequest

    def init_without(self, *args, **kwargs):  # a daphne that renamed _response_started
        self.response_begun = False

    monkeypatch.setattr(WebRequest, "__init__", init_without)
    with pytest.raises(guard.PatchRefused, match="_response_started"):
        daphne_reaper.check()


def test_a_changed_signature_is_refused(monkeypatch):
    from daphne.server import Server

    async def handle_reply(self, protocol, message, more):  # a new parameter
        pass

    monkeypatch.setattr(Server, "handle_reply", handle_reply)
    with pytest.raises(guard.PatchRefused, match="handle_reply takes"):
        daphne_flow.check()


def test_every_patch_still_fits_once_installed():
    """A process checks again after it installed them (the system check at start-up): each
    check looks through a patch at what it replaced."""
    for patch in patches.EVERY_PROCESS + (uvloop_poll_errors,):
        patch.install()
    daphne_drain.install(lambda server, port: None, lambda: False)
    assert patches.problems(with_uvloop=True) == []
