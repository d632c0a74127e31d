"""The server's system check (``llm_gateway.E010``), registered by the app: whether its patches
fit the daphne, Twisted, autobahn and uvloop that are installed."""

from __future__ import annotations

import importlib.util
import sys
from typing import Any

from django.core.checks import CheckMessage, Error, Tags, register

from .patches import guard, problems


@register(Tags.compatibility)
def check_server_patches(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """The server's patches fit what is installed: in a daphne process every check of every
    patch (``server.patches``); elsewhere (``manage.py check``) the versions, which need no
    import of daphne (that would install its reactor in this process)."""

    if "daphne.server" in sys.modules:
        found = problems(with_uvloop="uvloop" in sys.modules)
    else:
        found = []
        for distribution in guard.TESTED:
            if importlib.util.find_spec(distribution.lower()) is None:
                continue  # not installed: nothing to patch (uvloop is optional)
            try:
                guard.require_version(distribution)
            except guard.PatchRefused as exc:
                found.append(str(exc))
    return [
        Error(
            f"The server's patches cannot be installed: {problem}.",
            hint="Install the versions pyproject.toml declares, or check the patches in "
            "llm_gateway/server/patches/ against these and widen guard.TESTED.",
            id="llm_gateway.E010",
        )
        for problem in found
    ]
