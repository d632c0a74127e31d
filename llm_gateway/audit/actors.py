"""Who is acting: each path that changes an audited row (the admin, a management command,
the portal, the usage API) runs the change inside one of these, so the record names the
actor, how they came (``via``), their address and the request id.

django-auditlog fills a record from the context its ``set_extra_data`` opens: the user (its
``actor`` column), and any other of its columns named in the context (``remote_addr``,
``cid``, ``additional_data``). A command or a key is no Django user, so the actor's name is
always in ``additional_data`` too."""

from __future__ import annotations

import getpass
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

VIA = ("admin", "command", "portal", "api")


@contextmanager
def acting(
    name: str,
    via: str,
    *,
    user: Any = None,
    remote_addr: str | None = None,
    request_id: str | None = None,
) -> Iterator[None]:
    """Changes made inside are recorded as ``name``'s, come ``via`` one of ``VIA``."""
    assert via in VIA, via
    from auditlog.context import set_extra_data
    from django.contrib.contenttypes.models import ContentType

    # A record names its object's content type by id, from a cache each process keeps for
    # its life: a long-running server whose content types were made anew under it (a
    # database flushed and migrated again, as between end-to-end tests) would write ids that
    # no longer exist. Changes are rare; one query each buys a record that always holds.
    ContentType.objects.clear_cache()

    context = {
        "actor": user,
        "remote_addr": remote_addr,
        "cid": request_id,
        "additional_data": {"actor": name, "via": via},
    }
    with set_extra_data(context_data=context):
        yield


def for_request(request: Any, via: str) -> Any:
    """A Django request's user (the admin, the portal)."""
    user = request.user
    return acting(
        user.get_username(),
        via,
        user=user,
        remote_addr=request.META.get("REMOTE_ADDR"),
        request_id=getattr(request, "request_id", None),
    )


def for_command(command: str) -> Any:
    """A management command, and the OS user who ran it."""
    try:
        os_user = getpass.getuser()
    except OSError:  # no name for this uid (a container's)
        os_user = "unknown"
    return acting(f"command {command} (os user {os_user})", "command")


def for_key(name: str, shown: str, client: str | None, request_id: str | None) -> Any:
    """A key acting on itself through the usage API (``DELETE /v1/gateway/key``); ``shown``
    is the key as it is shown anywhere (``keys.display``: its prefix, never its secret)."""
    return acting(f"key {name} ({shown})", "api", remote_addr=client, request_id=request_id)
