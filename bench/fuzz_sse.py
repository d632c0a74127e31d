"""The long fuzz of the SSE decoder and the stream boundary (the suite runs a few thousand
cases of the same properties: tests/test_sse_fuzz.py).

    .venv/bin/python bench/fuzz_sse.py [--examples 100000]

Each case: a random event stream (tests/sse_reference.py: every kind of line, CR/LF/CRLF
mixes, BOMs, invalid UTF-8) decoded whole and in a random chunking, against the reference
model of the WHATWG rules; and the stream boundary relaying it byte for byte.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")

import django  # noqa: E402

django.setup()

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

from tests import test_sse_fuzz as fuzz  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--examples", type=int, default=100_000)
    args = parser.parse_args()
    long_run = settings(
        max_examples=args.examples,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
    )
    counts = {"decoder": 0, "bytes": 0, "boundary": 0}

    @long_run
    @given(st.data())
    def decoder(data: st.DataObject) -> None:
        counts["decoder"] += 1
        fuzz.check_decoder(data)

    @long_run
    @given(*fuzz.BYTES)
    def arbitrary(stream: bytes, cuts: list[int]) -> None:
        counts["bytes"] += 1
        fuzz.check_bytes(stream, cuts)

    @long_run
    @given(st.data())
    def boundary(data: st.DataObject) -> None:
        counts["boundary"] += 1
        fuzz.check_boundary(data)

    for key, name, run in (
        ("decoder", "decoder against the reference, whole and in a random chunking", decoder),
        ("bytes", "arbitrary bytes, decoder against the reference", arbitrary),
        ("boundary", "stream boundary: byte for byte, whole events only", boundary),
    ):
        started = time.perf_counter()
        run()  # a failure raises, with hypothesis' smallest failing case
        print(f"{name}: {counts[key]} cases, 0 failures, {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
