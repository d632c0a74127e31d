"""How long a key check takes, by what the token is: does the time tell an attacker anything?

    .venv/bin/python bench/key_timing.py [--calls 200000]

In process, the per-process key store (``llm_gateway.keys.store``) with its rows cached, as on
every request after a key's first: each call timed alone (``perf_counter_ns``), the cases
interleaved in a random order so that drift and noise fall on all of them alike:

- valid: the right key
- wrong secret: a known prefix, its secret wrong in the last character
- wrong secret, first: ... wrong in the first character
- unknown prefix: a well-formed key whose prefix no row has (its "no such key" is cached)

Then the digest comparison alone (``keys.digests_equal``): equal digests, digests that differ
in the first character, in the last. Prints each case's p10/p50/p90/p99 in ns, and each wrong
case's median less the wrong-secret median, next to the spread (p90 - p10) of that median.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")
os.environ.setdefault("LLM_GATEWAY_VAR_DIR", tempfile.mkdtemp(prefix="llm-gateway-key-timing-"))
os.environ["LLM_GATEWAY_KEY_CACHE_SECONDS"] = "3600"  # rows stay cached: the hot path only
os.environ["LLM_GATEWAY_API_KEYS"] = ""

import django  # noqa: E402

django.setup()

from django.core.management import call_command  # noqa: E402

from llm_gateway import keys  # noqa: E402
from llm_gateway.keys import KeyStore  # noqa: E402
from llm_gateway.models import ApiKey  # noqa: E402

key_store = KeyStore(rows=ApiKey)  # this benchmark's own, with the default options


def quantiles(values: list[int]) -> dict[str, float]:
    cuts = statistics.quantiles(values, n=100)
    return {"p10": cuts[9], "p50": cuts[49], "p90": cuts[89], "p99": cuts[98]}


def interleaved(names: list[str], calls: int, seed: int) -> tuple[dict[str, list[int]], list[str]]:
    """Each case's list of times (empty), and the order of the calls: ``calls`` of each case,
    shuffled, so that drift and noise fall on every case alike."""
    order = [name for name in names for _ in range(calls)]
    random.Random(seed).shuffle(order)
    return {name: [] for name in names}, order


def flip(text: str, index: int) -> str:
    replacement = "A" if text[index] != "A" else "B"
    return text[:index] + replacement + text[index + 1 :]


async def store_timings(raw: str, calls: int) -> dict[str, list[int]]:
    prefix_end = raw.index("-", 3) + 1
    unknown = keys.generate().raw
    cases = {
        "valid": raw,
        "wrong secret": flip(raw, len(raw) - 1),
        "wrong secret, first": flip(raw, prefix_end),
        "unknown prefix": unknown,
    }
    for token in cases.values():  # every row (and the unknown prefix's absence) cached
        await key_store.authenticate(token)
    times, order = interleaved(list(cases), calls, seed=17)
    clock, authenticate = time.perf_counter_ns, key_store.authenticate
    for name in order:
        token = cases[name]
        begun = clock()
        await authenticate(token)
        times[name].append(clock() - begun)
    return times


def compare_timings(calls: int) -> dict[str, list[int]]:
    stored = keys.digest(keys.generate().raw)
    cases = {
        "equal": stored,
        "differ first": flip(stored, 0),
        "differ last": flip(stored, len(stored) - 1),
    }
    times, order = interleaved(list(cases), calls, seed=18)
    clock, equal = time.perf_counter_ns, keys.digests_equal
    for name in order:
        other = cases[name]
        begun = clock()
        equal(stored, other)
        times[name].append(clock() - begun)
    return times


def report(title: str, times: dict[str, list[int]], baseline: str) -> None:
    print(title)
    base = quantiles(times[baseline])
    for name, values in times.items():
        q = quantiles(values)
        line = "  ".join(f"{k} {v:7.0f}" for k, v in q.items())
        delta = q["p50"] - base["p50"]
        print(f"  {name:22} {line}   p50 - {baseline}: {delta:+6.0f} ns")
    print(f"  spread of {baseline} (p90 - p10): {base['p90'] - base['p10']:.0f} ns")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--calls", type=int, default=200_000)
    args = parser.parse_args()
    call_command("migrate", verbosity=0)
    from llm_gateway.models import ApiKey

    _, raw = ApiKey.create(f"timing-{os.getpid()}")
    print(f"{args.calls} calls per case, interleaved at random; times in ns")
    report(
        "key_store.authenticate (cached rows)",
        asyncio.run(store_timings(raw, args.calls)),
        "wrong secret",
    )
    report("keys.digests_equal (hmac.compare_digest)", compare_timings(args.calls), "equal")


if __name__ == "__main__":
    main()
