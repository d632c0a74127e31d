"""The per-process view of the API keys: authentication with no query and no thread hop.

Each process keeps the rows of the keys it has seen. One background task re-reads those rows
every ``KEY_CACHE_SECONDS`` (one query for all of them), so a revocation or expiry change made
by any process (admin, management command) is seen within that interval plus a query, without
a database round trip on any request. A key seen for the first time, or whose row is older
than ``2 * KEY_CACHE_SECONDS`` (the refresher is behind), is read on the spot.

While the database is unreachable, cached keys keep working (no revocation can be written
meanwhile) and a request tries the database for a cached key at most once per
``2 * KEY_CACHE_SECONDS``; one warning when the outage starts, one line when it ends.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import enum
import logging
import time
from dataclasses import dataclass
from typing import Any

from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import DatabaseError, close_old_connections

from . import keys
from .conf import conf
from .errors import KeyStoreUnavailable
from .limits.spec import FIELDS as LIMIT_FIELDS
from .limits.spec import Scope, scopes_for

logger = logging.getLogger(__name__)

IDLE_EVICT_SECONDS = 300.0
NO_DIGEST = "-" * 64  # the length of a SHA-256 hex digest, and never one
MAX_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made the request: what views see as ``scope["llm_gateway.api_key"]``."""

    id: int | None
    name: str
    prefix: str
    scopes: tuple[Scope, ...] = ()  # the key's limits and its owner's; () : none


class Verdict(enum.Enum):
    OK = "ok"
    INVALID = "Invalid API key."
    EXPIRED = "This API key has expired."
    REVOKED = "This API key has been revoked."


@dataclass(slots=True)
class _Entry:
    digest: str | None  # None: no such prefix
    principal: Principal | None
    expires_ts: float | None
    revoked_ts: float | None
    loaded: float  # monotonic
    seen: float  # monotonic


_OWNER_LIMITS = "owner__llm_gateway_limits__"
_FIELDS = (
    "id",
    "name",
    "prefix",
    "digest",
    "expires_at",
    "revoked_at",
    "owner_id",
    *LIMIT_FIELDS,
    *(_OWNER_LIMITS + name for name in LIMIT_FIELDS),
)


def _entry_from_row(row: dict[str, Any] | None, now: float) -> _Entry:
    if row is None:
        return _Entry(None, None, None, None, now, now)
    return _Entry(
        row["digest"],
        Principal(row["id"], row["name"], row["prefix"], scopes_for(row, _OWNER_LIMITS)),
        row["expires_at"].timestamp() if row["expires_at"] else None,
        row["revoked_at"].timestamp() if row["revoked_at"] else None,
        now,
        now,
    )


def _fetch_rows(prefixes: list[str]) -> dict[str, dict[str, Any]]:
    from .models import ApiKey

    close_old_connections()  # a dropped database connection is reopened, not reused
    rows = ApiKey.objects.filter(prefix__in=prefixes).values(*_FIELDS, owner_name=_owner_name())
    return {row["prefix"]: row for row in rows}


def _owner_name() -> Any:
    from django.contrib.auth import get_user_model
    from django.db.models import F

    return F("owner__" + get_user_model().USERNAME_FIELD)


def _write_last_used(key_id: int, interval: float) -> None:
    from django.utils import timezone

    from .models import ApiKey

    # cache.add is atomic in a shared cache: one process in the fleet writes per interval.
    if cache.add(f"llm_gateway:last_used:{key_id}", 1, timeout=max(1, int(interval))):
        close_old_connections()
        ApiKey.objects.filter(pk=key_id).update(last_used_at=timezone.now())


class KeyStore:
    def __init__(self) -> None:
        self._entries: dict[str, _Entry] = {}
        self._last_used: dict[int, float] = {}
        self._static: tuple[tuple[str, ...], list[str]] = ((), [])
        self._refresher: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._outage = False

    async def authenticate(self, token: str) -> tuple[Verdict, Principal | None]:
        prefix = keys.prefix_of(token)
        token_digest = keys.digest(token)
        if prefix is not None:
            verdict, principal = await self._check_stored(prefix, token_digest)
            if verdict is not Verdict.INVALID:
                return verdict, principal
        if self._check_static(token_digest):
            return Verdict.OK, Principal(None, "static", "")
        return Verdict.INVALID, None

    def _check_static(self, token_digest: str) -> bool:
        configured = tuple(conf.API_KEYS)
        if configured != self._static[0]:
            self._static = (configured, [keys.digest(k) for k in configured])
        matched = False
        for candidate in self._static[1]:  # no early exit: time does not depend on which matched
            matched |= keys.digests_equal(candidate, token_digest)
        return matched

    async def _check_stored(
        self, prefix: str, token_digest: str
    ) -> tuple[Verdict, Principal | None]:
        now = time.monotonic()
        entry = self._entries.get(prefix)
        if entry is None or now - entry.loaded > 2 * conf.KEY_CACHE_SECONDS:
            entry = await self._load(prefix, now, stale=entry)
        entry.seen = now
        # An unknown prefix is compared too (against a digest nothing hashes to): it costs
        # the same work as a known prefix with a wrong secret (bench/key_timing.py).
        matched = keys.digests_equal(entry.digest or NO_DIGEST, token_digest)
        if entry.digest is None or not matched:
            return Verdict.INVALID, None
        state = keys.state(entry.revoked_ts, entry.expires_ts, time.time())
        if state != "active":
            return (Verdict.REVOKED if state == "revoked" else Verdict.EXPIRED), None
        assert entry.principal is not None
        self._touch(entry.principal, now)
        return Verdict.OK, entry.principal

    async def _load(self, prefix: str, now: float, stale: _Entry | None) -> _Entry:
        try:
            rows = await self._fetch([prefix])
        except DatabaseError as exc:
            if stale is not None and stale.digest is not None:
                # No revocation can be written while the database is down: keep serving,
                # and try again for this key after the same interval as a fresh row.
                stale.loaded = now
                return stale
            raise KeyStoreUnavailable("The API key store is unavailable.") from exc
        entry = _entry_from_row(rows.get(prefix), now)
        self._ensure_refresher()
        if len(self._entries) >= MAX_ENTRIES:
            self._evict(now, force=True)
        self._entries[prefix] = entry
        return entry

    async def _fetch(self, prefixes: list[str]) -> dict[str, dict[str, Any]]:
        """The rows, noting when the database stops and starts answering."""
        try:
            rows = await sync_to_async(_fetch_rows)(prefixes)
        except DatabaseError as exc:
            if not self._outage:
                self._outage = True
                logger.warning("API key store unreachable, serving cached keys: %s", exc)
            raise
        if self._outage:
            self._outage = False
            logger.warning("API key store reachable again")
        return rows

    def _evict(self, now: float, force: bool = False) -> None:
        idle = 0.0 if force else IDLE_EVICT_SECONDS
        for prefix, entry in list(self._entries.items()):
            if now - entry.seen > idle or (force and entry.digest is None):
                del self._entries[prefix]

    def _touch(self, principal: Principal, now: float) -> None:
        interval = conf.LAST_USED_INTERVAL
        if principal.id is None or now - self._last_used.get(principal.id, -interval) < interval:
            return
        self._last_used[principal.id] = now
        self._spawn(sync_to_async(_write_last_used)(principal.id, interval))

    def _spawn(self, coro: Any) -> None:
        task = asyncio.ensure_future(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.warning("API key bookkeeping failed: %s", task.exception())

    def _ensure_refresher(self) -> None:
        task = self._refresher
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._refresher = asyncio.get_running_loop().create_task(
                self._refresh_forever(), context=contextvars.Context()
            )

    async def _refresh_forever(self) -> None:
        while True:
            await asyncio.sleep(conf.KEY_CACHE_SECONDS)
            try:
                await self.refresh()
            except DatabaseError:
                pass  # _fetch said so once; cached keys are served meanwhile
            except Exception as exc:  # the refresher must outlive anything
                logger.warning("API key refresh failed: %s", exc)

    async def refresh(self) -> None:
        """Re-read every cached key that exists and drop idle entries. Unknown prefixes are
        not re-read here: ``_check_stored`` reloads any entry older than twice the interval."""
        now = time.monotonic()
        self._evict(now)
        wanted = [p for p, e in self._entries.items() if e.digest is not None]
        if not wanted:
            return
        rows = await self._fetch(wanted)
        now = time.monotonic()
        for prefix in wanted:
            old = self._entries.get(prefix)
            if old is None:
                continue
            entry = _entry_from_row(rows.get(prefix), now)
            entry.seen = old.seen
            if entry.principal == old.principal:
                entry.principal = old.principal  # the same object: plans cached on it stay
            self._entries[prefix] = entry

    async def aclose(self) -> None:
        for task in [self._refresher, *self._tasks]:
            if task is not None and not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task
        self._refresher = None

    def clear(self) -> None:
        """Forget every cached key (tests, and a changed database)."""
        self._entries.clear()
        self._last_used.clear()


key_store = KeyStore()
