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
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from asgiref.sync import sync_to_async
from django.db import DatabaseError

from ..core.priority import FAIR_FIELDS, FairShare, fair_share_of
from ..core.request import Principal
from ..errors import KeyStoreUnavailable
from ..limits.spec import OWNER_LIMITS, TEAM_LIMITS, scopes_for
from . import format as keys

logger = logging.getLogger(__name__)

IDLE_EVICT_SECONDS = 300.0
NO_DIGEST = "-" * 64  # the length of a SHA-256 hex digest, and never one
MAX_ENTRIES = 20_000


@dataclass(frozen=True, slots=True)
class KeyStoreOptions:
    cache_seconds: float = 0.5  # how often cached keys are read again (revocation latency)
    last_used_interval: float = 60.0  # at most one last_used_at write per key this often
    static_keys: tuple[str, ...] = ()  # LLM_GATEWAY_API_KEYS: compared by digest


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


def _entry_from_row(row: dict[str, Any] | None, now: float) -> _Entry:
    if row is None:
        return _Entry(None, None, None, None, now, now)
    return _Entry(
        row["digest"],
        Principal(
            row["id"],
            row["name"],
            row["prefix"],
            scopes_for(row, OWNER_LIMITS, TEAM_LIMITS),
            row.get("team_name") or "",
            row.get("owner_name") or "",
            _fair_share(row),
        ),
        row["expires_at"].timestamp() if row["expires_at"] else None,
        row["revoked_at"].timestamp() if row["revoked_at"] else None,
        now,
        now,
    )


def _fair_share(row: dict[str, Any]) -> FairShare:
    def fields(prefix: str) -> dict[str, object]:
        return {name: row.get(prefix + name) for name in FAIR_FIELDS}

    return fair_share_of(
        {"key": fields(""), "owner": fields(OWNER_LIMITS), "team": fields(TEAM_LIMITS)},
        {"key": row["id"], "owner": row.get("owner_id"), "team": row.get("team_id")},
    )


class KeyRows(Protocol):
    """Where the store reads the keys: the ``ApiKey`` model (``models.py``), given by the
    runtime, so that this module imports no model. Both run in a worker thread."""

    def store_rows(self, prefixes: list[str]) -> dict[str, dict[str, Any]]:
        """Each key's row by prefix, with its owner's limits (``spec.OWNER_LIMITS``)."""
        ...

    def touch(self, key_id: int, interval: float) -> None:
        """Note the key's use, at most once per ``interval`` across every process."""
        ...


class NoRows:
    """No table at all: every generated key is unknown (static keys only)."""

    def store_rows(self, prefixes: list[str]) -> dict[str, dict[str, Any]]:
        return {}

    def touch(self, key_id: int, interval: float) -> None:
        pass


class KeyStore:
    def __init__(
        self,
        options: KeyStoreOptions | None = None,
        rows: KeyRows | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.options = options = options or KeyStoreOptions()
        self.rows: KeyRows = rows or NoRows()
        self.clock = clock  # monotonic seconds (tests give their own)
        self._entries: dict[str, _Entry] = {}
        self._last_used: dict[int, float] = {}
        self._static: Sequence[str] = [keys.digest(k) for k in options.static_keys]
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
        matched = False
        for candidate in self._static:  # no early exit: time does not depend on which matched
            matched |= keys.digests_equal(candidate, token_digest)
        return matched

    async def _check_stored(
        self, prefix: str, token_digest: str
    ) -> tuple[Verdict, Principal | None]:
        now = self.clock()
        entry = self._entries.get(prefix)
        if entry is None or now - entry.loaded > 2 * self.options.cache_seconds:
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
            rows = await sync_to_async(self.rows.store_rows)(prefixes)
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
        interval = self.options.last_used_interval
        if principal.id is None or now - self._last_used.get(principal.id, -interval) < interval:
            return
        self._last_used[principal.id] = now
        self._spawn(sync_to_async(self.rows.touch)(principal.id, interval))

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
            await asyncio.sleep(self.options.cache_seconds)
            try:
                await self.refresh()
            except DatabaseError:
                pass  # _fetch said so once; cached keys are served meanwhile
            except Exception as exc:  # the refresher must outlive anything
                logger.warning("API key refresh failed: %s", exc)

    async def refresh(self) -> None:
        """Re-read every cached key that exists and drop idle entries. Unknown prefixes are
        not re-read here: ``_check_stored`` reloads any entry older than twice the interval."""
        now = self.clock()
        self._evict(now)
        wanted = [p for p, e in self._entries.items() if e.digest is not None]
        if not wanted:
            return
        rows = await self._fetch(wanted)
        now = self.clock()
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
