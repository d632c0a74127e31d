"""What a patch of third-party code relies on, checked before it is installed: the versions it
was tested with, and each private attribute, method and parameter it touches. A mismatch
raises ``PatchRefused`` with the reason, so the process says so at start (the app refuses to
start, and the system check ``llm_gateway.E010`` reports it); never a silent no-op.

``TESTED`` is the one list of tested versions; ``pyproject.toml`` declares the same bounds
(a test holds them equal).
"""

from __future__ import annotations

import importlib.metadata
import inspect
import re
from collections.abc import Callable
from typing import Any

# Distribution: (lowest version tested, first version not tested).
TESTED: dict[str, tuple[str, str]] = {
    "daphne": ("4.2", "4.3"),
    "Twisted": ("26.0", "27.0"),
    "autobahn": ("26.0", "27.0"),
    "uvloop": ("0.23", "0.24"),
}


class PatchRefused(RuntimeError):
    """A patch's target changed: the patch would silently do nothing, or the wrong thing."""


def version_tuple(version: str) -> tuple[int, ...]:
    """``"26.10.0"`` -> ``(26, 10, 0)``; a pre-release suffix (``0.23.0rc1``) is dropped."""
    return tuple(int(part) for part in re.findall(r"\d+", version.split("+")[0])[:3])


def require_version(distribution: str) -> str:
    """The installed version, if within ``TESTED``; else ``PatchRefused``."""
    low, high = TESTED[distribution]
    try:
        installed = importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        raise PatchRefused(f"{distribution} is not installed") from None
    if not version_tuple(low) <= version_tuple(installed) < version_tuple(high):
        raise PatchRefused(
            f"{distribution} {installed} is not a version the gateway's patches were tested "
            f"with (>={low},<{high}); install one of those, or check the patches against it"
        )
    return installed


def require_attributes(owner: Any, *names: str) -> None:
    """``owner`` (a class or module) has each of ``names``."""
    missing = [name for name in names if not hasattr(owner, name)]
    if missing:
        raise PatchRefused(f"{_name(owner)} has no {', '.join(missing)}")


def require_method(owner: Any, name: str, *parameters: str) -> None:
    """``owner.name`` exists and takes exactly these parameters, in this order (``self``
    included)."""
    require_attributes(owner, name)
    function: Callable[..., Any] = getattr(owner, name)
    found = tuple(inspect.signature(function).parameters)
    if found != parameters:
        raise PatchRefused(f"{_name(owner)}.{name} takes {found}, not {parameters}")


def require_assigned(owner: type, method: str, *names: str) -> None:
    """``owner.method`` reads or assigns each attribute of ``names`` (an instance attribute
    that only exists once ``__init__`` ran cannot be looked up on the class). A method a
    patch replaced is checked as it was (the patches keep it as ``__wrapped__``)."""
    function = getattr(owner, method, None)
    code = getattr(inspect.unwrap(function) if function else None, "__code__", None)
    used = set(code.co_names) if code is not None else set()
    missing = [name for name in names if name not in used]
    if missing:
        raise PatchRefused(f"{_name(owner)}.{method} no longer sets {', '.join(missing)}")


def _name(owner: Any) -> str:
    module = getattr(owner, "__module__", "") or ""
    qualified = str(getattr(owner, "__qualname__", None) or getattr(owner, "__name__", owner))
    return f"{module}.{qualified}" if module and module != qualified else qualified
