"""What ``prefix_affinity`` costs a request: its key from an 8 KiB prompt, the hash, and the
pick on a ring of 3 replicas (issue 13: at most 20 us).

    .venv/bin/python bench/affinity_cost.py [--prompt-bytes 8192] [--requests 20000]
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from llm_gateway.core.affinity import affinity_key  # noqa: E402
from llm_gateway.core.request import GatewayRequest  # noqa: E402
from llm_gateway.upstream.balance import Ring, key_hash  # noqa: E402


@dataclass(eq=False)
class Replica:
    name: str
    weight: float = 1.0
    in_flight: int = 0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--prompt-bytes", type=int, default=8192)
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--prefix-chars", type=int, default=2048)
    args = parser.parse_args()
    system = ("You are a careful assistant. " * 1000)[: args.prompt_bytes // 2]
    user = ("Summarise the following text. " * 1000)[: args.prompt_bytes // 2]
    payload = {
        "model": "m",
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
    }
    request = GatewayRequest("POST", "/chat/completions", b"", [], b"", "r", None, payload=payload)
    replicas = [Replica("a", in_flight=3), Replica("b", in_flight=5), Replica("c", in_flight=4)]
    ring = Ring(replicas)
    for label, chars in (("default prefix", args.prefix_chars), ("whole prompt", 10**9)):
        started = time.perf_counter()
        for _ in range(args.requests):
            key = affinity_key(request, chars)
            assert key is not None
            ring.pick(key_hash(key), replicas, 1.25)
        each = (time.perf_counter() - started) / args.requests
        print(f"{label} ({min(chars, args.prompt_bytes)} chars): {each * 1e6:.2f} us a request")


if __name__ == "__main__":
    main()
