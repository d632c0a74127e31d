"""The request log: one database row per relayed request, and the daily usage rollups.

Writing stays off the request's path. ``finish()`` puts a row in a bounded in-memory queue
(no I/O, no thread hop); a background task writes the queue in bulk at least once a second,
or as soon as a batch is waiting, in one thread hop per batch. While the database is down,
rows wait in the queue up to ``LLM_GATEWAY_REQUEST_LOG_QUEUE``; past that, new rows are
dropped, counted, and said once in the log (and once more when writing works again). At
shutdown the queue is written out.

Each batch also adds itself to ``UsageDaily`` (key, model, day: tokens, cost, the key's
team and owner then) and ``ErrorDaily`` (day, code) in the same transaction, so usage
questions read the rollups, never the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import datetime as dt
import logging
from collections import defaultdict, deque
from decimal import Decimal
from typing import Any

from asgiref.sync import sync_to_async
from django.db import DatabaseError, IntegrityError, close_old_connections, connection, transaction
from django.db.models import F

from ..core.cost import money
from ..core.hooks import Observer
from ..core.record import RequestRecord

logger = logging.getLogger(__name__)

# A row as the loop keeps it: plain values in COLUMNS order, the time as a POSIX float
# (made a datetime in the writer's thread, off the loop).
Row = tuple[Any, ...]
COLUMNS = (
    "created_at",
    "request_id",
    "key_id",
    "key_name",
    "model",
    "upstream",
    "method",
    "path",
    "status",
    "stream",
    "prompt_tokens",
    "completion_tokens",
    "cached_tokens",
    "usage_source",
    "ttfb_ms",
    "ttft_ms",
    "duration_ms",
    "ending",
    "client",
    "tried",
    "team",
    "cost",
    "price_version",
    "owner",
    "priority",
    "queued_ms",
)
_KEY_NAME, _MODEL, _PROMPT, _COMPLETION, _CACHED, _ENDING = 3, 4, 10, 11, 12, 17
_TEAM, _COST, _OWNER = 20, 21, 23


def row_of(record: RequestRecord) -> Row:
    key = record.api_key
    return (
        record.created,
        record.request_id[:128],
        key.id if key is not None else None,
        key.name if key is not None else "",
        (record.model or "")[:200],
        (record.upstream or "")[:200],
        record.method[:10],
        record.path[:300],
        record.status,
        record.stream,
        record.prompt_tokens,
        record.completion_tokens,
        record.cached_tokens,
        record.usage_source,
        _ms(record.ttfb),
        _ms(record.ttft),
        _ms(record.duration),
        (record.ending or "")[:64],
        (record.client or "")[:64],
        ",".join(record.tried)[:500],
        key.team[:150] if key is not None else "",
        money(cost) if (cost := record.cost_micro) is not None else None,
        record.price.version if record.price is not None and cost is not None else None,
        key.owner[:150] if key is not None else "",
        record.priority,
        _ms(record.queued) if record.queued else None,
    )


def _ms(seconds: float | None) -> float | None:
    return round(seconds * 1000, 3) if seconds is not None else None


def write_rows(rows: list[Row]) -> None:
    """Insert the rows and add them to the rollups, in one transaction (a thread's work).

    PostgreSQL takes the rows by COPY (about 3 us of the gateway's CPU a row), others by one
    ``executemany``: the ORM's ``bulk_create`` cost about 100 us a row (model instances,
    per-field preparation), more than relaying the request, and psycopg's ``executemany``
    25 us (bench/feature_cost.py --feature request-log)."""
    from ..models import ErrorDaily, RequestLog, UsageDaily

    adapt = connection.ops.adapt_datetimefield_value
    params = []
    usage: dict[tuple[Any, ...], list[Any]] = defaultdict(lambda: [0, 0, 0, 0, 0, Decimal(0), 0])
    errors: dict[tuple[dt.date, str], int] = defaultdict(int)
    for row in rows:
        created = dt.datetime.fromtimestamp(row[0], dt.UTC)
        params.append((adapt(created), *row[1:]))
        day = created.date()
        totals = usage[(row[2], row[_KEY_NAME], row[_MODEL], day, row[_TEAM], row[_OWNER])]
        totals[0] += 1
        totals[1] += row[_PROMPT] or 0
        totals[2] += row[_COMPLETION] or 0
        totals[3] += row[_CACHED] or 0
        if row[_ENDING].startswith("error:"):
            totals[4] += 1
            errors[(day, row[_ENDING][6:])] += 1
        if row[_COST] is None:
            totals[6] += 1
        else:
            totals[5] += row[_COST]
    with transaction.atomic():
        _insert(RequestLog._meta.db_table, params)
        for (key_id, key_name, model, day, team, owner), totals in sorted(
            usage.items(), key=lambda item: (item[0][1], item[0][2], item[0][3], item[0][4])
        ):
            n, prompt, completion, cached, failed, cost, unpriced = totals
            _add(
                UsageDaily,
                {"key_name": key_name, "model": model, "day": day},
                {"key_id": key_id, "team": team, "owner": owner},
                requests=n,
                prompt_tokens=prompt,
                completion_tokens=completion,
                cached_tokens=cached,
                errors=failed,
                cost=cost,
                unpriced=unpriced,
            )
        for (day, code), count in sorted(errors.items()):
            _add(ErrorDaily, {"day": day, "code": code}, {}, count=count)


def _insert(table: str, params: list[tuple[Any, ...]]) -> None:
    quoted = connection.ops.quote_name(table)
    columns = ", ".join(connection.ops.quote_name(c) for c in COLUMNS)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            raw = cursor.cursor  # psycopg's own: COPY, about 3 us a row
            with raw.copy(f"COPY {quoted} ({columns}) FROM STDIN") as copy:
                for row in params:
                    copy.write_row(row)
            return
        marks = ", ".join(["%s"] * len(COLUMNS))
        cursor.executemany(f"INSERT INTO {quoted} ({columns}) VALUES ({marks})", params)


def _write_from_a_thread(rows: list[Row]) -> None:
    close_old_connections()  # a dropped database connection is reopened, not reused
    write_rows(rows)


def _add(model: Any, identity: dict[str, Any], extra: dict[str, Any], **amounts: Any) -> None:
    """Add amounts to the row of ``identity``, creating it if it is new. Another process may
    create it at the same moment: then the unique constraint says so and we add to theirs."""
    increments = {name: F(name) + amount for name, amount in amounts.items()}
    if model.objects.filter(**identity).update(**increments):
        return
    try:
        with transaction.atomic():
            model.objects.create(**identity, **extra, **amounts)
    except IntegrityError:
        model.objects.filter(**identity).update(**increments)


class RequestLogWriter:
    """The queue and the task that drains it, one per runtime. ``queue_size``: rows waiting
    for the database at most; ``batch``: rows that wake the writer before its second."""

    def __init__(self, queue_size: int = 50_000, batch: int = 500) -> None:
        self.queue_size, self.batch = queue_size, batch
        self._queue: deque[Row] = deque()
        self._task: asyncio.Task[None] | None = None
        self._wake: asyncio.Event | None = None
        self.dropped = 0
        self.written = 0
        self._dropping = False
        self._failing = False

    def put(self, row: Row) -> None:
        if len(self._queue) >= self.queue_size:
            self.dropped += 1
            if not self._dropping:
                self._dropping = True
                logger.warning(
                    "request log queue full (%d rows waiting): new rows are dropped",
                    len(self._queue),
                )
            return
        self._queue.append(row)
        self._ensure_started()
        if len(self._queue) >= self.batch and self._wake is not None:
            self._wake.set()

    @property
    def waiting(self) -> int:
        return len(self._queue)

    def _ensure_started(self) -> None:
        task = self._task
        loop = asyncio.get_running_loop()
        if task is None or task.done() or task.get_loop() is not loop:
            self._wake = asyncio.Event()
            self._task = loop.create_task(self._run(), context=contextvars.Context())

    async def _run(self) -> None:
        assert self._wake is not None
        pause = 1.0
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), pause)
            self._wake.clear()
            pause = 1.0 if await self.flush() else min(pause * 2, 10.0)

    async def flush(self, everything: bool = False) -> bool:
        """Write the rows waiting now (or, at shutdown, ``everything`` until none is left),
        in batches; False if the database failed (the rows stay queued for the next try).
        Rows that arrive meanwhile wait for the next round: writing them at once, a few at
        a time, cost a transaction for every few rows."""
        left = len(self._queue)
        while self._queue and (left > 0 or everything):
            batch = [self._queue.popleft() for _ in range(min(len(self._queue), 1000))]
            left -= len(batch)
            try:
                await sync_to_async(_write_from_a_thread)(batch)
            except DatabaseError as exc:
                self._queue.extendleft(reversed(batch))
                if not self._failing:
                    self._failing = True
                    logger.warning("request log unwritable, rows wait in memory: %s", exc)
                return False
            self.written += len(batch)
            if self._failing or self._dropping:
                logger.warning(
                    "request log written again (%d rows dropped meanwhile)", self.dropped
                )
                self._failing = self._dropping = False
        return True

    async def aclose(self) -> None:
        """Stop the task and write what is waiting (one try: the database may be gone)."""
        task, self._task = self._task, None
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        if self._queue and not await self.flush(everything=True):
            logger.warning("request log: %d rows not written at shutdown", len(self._queue))


class RequestLogObserver(Observer):
    """Each record, as a row, into the writer's queue."""

    def __init__(self, writer: RequestLogWriter) -> None:
        self.writer = writer

    def finish(self, record: RequestRecord) -> None:
        self.writer.put(row_of(record))
