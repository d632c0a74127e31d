import asyncio
import logging
import time

import pytest
from asgiref.sync import sync_to_async
from django.core.cache import cache
from django.db import DatabaseError

from llm_gateway.errors import KeyStoreUnavailable
from llm_gateway.keys import KeyStore, KeyStoreOptions, Verdict
from llm_gateway.keys import format as keys
from llm_gateway.models import ApiKey

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def fetches(monkeypatch):
    calls = []
    real = ApiKey.store_rows

    def counting(prefixes):
        calls.append(list(prefixes))
        return real(prefixes)

    monkeypatch.setattr(ApiKey, "store_rows", counting)
    return calls


def test_steady_state_needs_no_query(fetches):
    _, raw = ApiKey.create("k")
    store = KeyStore(rows=ApiKey)

    async def run():
        results = [await store.authenticate(raw) for _ in range(50)]
        await store.aclose()
        return results

    results = asyncio.run(run())
    assert all(verdict is Verdict.OK for verdict, _ in results)
    assert len(fetches) == 1  # the first sight only


def test_revocation_is_seen_by_the_refresher_without_a_request_query(fetches):
    key, raw = ApiKey.create("k")
    store = KeyStore(KeyStoreOptions(cache_seconds=0.1), ApiKey)

    async def run():
        assert (await store.authenticate(raw))[0] is Verdict.OK
        await sync_to_async(key.revoke)()  # the executor thread the fixture cleans up
        deadline = time.monotonic() + 30  # only a hang misses it (bench: how soon)
        while time.monotonic() < deadline:
            await asyncio.sleep(0.02)
            verdict, _ = await store.authenticate(raw)
            if verdict is Verdict.REVOKED:
                break
        await store.aclose()
        return verdict

    assert asyncio.run(run()) is Verdict.REVOKED
    assert len(fetches) >= 2 and all(len(prefixes) == 1 for prefixes in fetches)


def test_unknown_key_is_cached_negatively(fetches):
    store = KeyStore(rows=ApiKey)
    bogus = "sk-0badc0de-" + "A" * 43

    async def run():
        for _ in range(5):
            assert (await store.authenticate(bogus))[0] is Verdict.INVALID
        await store.aclose()

    asyncio.run(run())
    assert len(fetches) == 1


def test_an_unknown_prefix_costs_the_same_comparison_as_a_wrong_secret(monkeypatch):
    """Timing: a cached "no such prefix" still compares digests in constant time, once, as
    a known prefix with a wrong secret does (bench/key_timing.py measures both)."""
    _, raw = ApiKey.create("k")
    wrong = raw[:-1] + ("A" if raw[-1] != "A" else "B")
    unknown = keys.generate().raw
    store = KeyStore(rows=ApiKey)
    compared = []
    real = keys.digests_equal
    monkeypatch.setattr(keys, "digests_equal", lambda a, b: compared.append(len(a)) or real(a, b))

    async def run():
        for token in (wrong, unknown):
            await store.authenticate(token)  # rows cached (and the absence of one)
        compared.clear()
        results = [await store.authenticate(wrong), await store.authenticate(unknown)]
        await store.aclose()
        return results

    assert [v for v, _ in asyncio.run(run())] == [Verdict.INVALID, Verdict.INVALID]
    assert compared == [64, 64]  # one SHA-256 hex digest comparison each


def test_last_used_is_written_at_most_once_per_interval():
    key, raw = ApiKey.create("k")
    cache.delete(f"llm_gateway:last_used:{key.pk}")  # a shared Redis may remember an old id
    store = KeyStore(KeyStoreOptions(last_used_interval=60), ApiKey)

    async def run():
        for _ in range(20):
            await store.authenticate(raw)
        await asyncio.gather(*store._tasks)
        await store.aclose()

    asyncio.run(run())
    key.refresh_from_db()
    first = key.last_used_at
    assert first is not None
    # Another process: the shared cache stops a second write.
    store2 = KeyStore(KeyStoreOptions(last_used_interval=60), ApiKey)

    async def run2():
        await store2.authenticate(raw)
        await asyncio.gather(*store2._tasks)
        await store2.aclose()

    asyncio.run(run2())
    key.refresh_from_db()
    assert key.last_used_at == first


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_database_outage_serves_cached_keys_and_backs_off(monkeypatch, caplog):
    _, raw = ApiKey.create("k")
    clock = Clock()
    store = KeyStore(KeyStoreOptions(cache_seconds=0.05), ApiKey, clock)
    real = ApiKey.store_rows
    down_fetches = []

    def down(prefixes):
        down_fetches.append(clock.now)
        raise DatabaseError("connection refused")

    async def run():
        assert (await store.authenticate(raw))[0] is Verdict.OK  # cached while up
        await store.aclose()  # no refresher: only the request path reads the database
        monkeypatch.setattr(ApiKey, "store_rows", down)
        clock.now += 0.15  # the cached row is now older than twice the interval
        verdicts = []
        for _ in range(50):  # a request every 10 ms for half a second
            verdicts.append((await store.authenticate(raw))[0])
            clock.now += 0.01
        with pytest.raises(KeyStoreUnavailable):  # a key never seen cannot be checked
            await store.authenticate("sk-0badc0de-" + "A" * 43)
        monkeypatch.setattr(ApiKey, "store_rows", real)
        clock.now += 0.15
        verdicts.append((await store.authenticate(raw))[0])
        await store.aclose()
        return verdicts

    with caplog.at_level(logging.WARNING, "llm_gateway.keys.store"):
        verdicts = asyncio.run(run())
    assert set(verdicts) == {Verdict.OK} and len(verdicts) == 51
    # One attempt per 2 x 0.05 s from the request path over 0.5 s, not one per request.
    attempts = down_fetches[:-1]  # the last one: the never-seen key
    assert len(attempts) == 5, attempts
    assert all(b - a > 0.1 for a, b in zip(attempts, attempts[1:], strict=False))
    said = [r for r in caplog.records if r.name == "llm_gateway.keys.store"]  # not asyncio's
    assert [r.getMessage().split(":")[0] for r in said] == [  # debug notes on a slow step
        "API key store unreachable, serving cached keys",
        "API key store reachable again",
    ]
