"""How long one ``/metrics`` scrape takes with many series: 50 models, 10 upstreams.

    .venv/bin/python bench/metrics_scrape.py [--models 50] [--upstreams 10]
        [--replicas-per-model 2] [--repeat 20]

Fills the gateway's own registry as traffic would (each model served by
--replicas-per-model of the upstreams, four statuses, streamed and not, every histogram),
then times ``GatewayMetrics.render()``, the function
both faces answer ``/metrics`` with: median and worst of --repeat scrapes, and the size.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "project.settings")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", type=int, default=50)
    parser.add_argument("--upstreams", type=int, default=10)
    parser.add_argument("--replicas-per-model", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=20)
    args = parser.parse_args()
    import django

    django.setup()
    from llm_gateway.observe.metrics import GatewayMetrics
    from llm_gateway.upstream import Upstream, UpstreamPool

    upstreams = [Upstream(f"http://10.0.0.{i}:8000/v1") for i in range(args.upstreams)]
    pool = UpstreamPool(upstreams)
    metrics = GatewayMetrics(pool)
    series = metrics.series
    models = [f"model-{i:02d}" for i in range(args.models)]
    for i, model in enumerate(models):
        serving = [upstreams[(i + j) % len(upstreams)] for j in range(args.replicas_per_model)]
        for upstream in serving:
            for status in ("200", "400", "429", "502"):
                for stream in ("true", "false"):
                    series.requests.labels(model, upstream.name, status, stream).inc()
        for stream in ("true", "false"):
            series.duration.labels(model, stream).observe(1.5)
        series.ttft.labels(model).observe(0.2)
        series.tpot.labels(model).observe(0.03)
        for kind in ("prompt", "completion"):
            series.tokens.labels(model, kind).inc(100)
        series.in_flight.labels(model).set(3)
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        status, _, body = metrics.render(None)
        times.append((time.perf_counter() - started) * 1000)
    lines = body.count(b"\n") - body.count(b"\n#")
    print(
        f"{args.models} models on {args.replicas_per_model} of {args.upstreams} upstreams each: "
        f"{lines:,} series, "
        f"{len(body) / 1024:.0f} KiB; scrape median {statistics.median(times):.1f} ms, "
        f"worst {max(times):.1f} ms (status {status})"
    )


if __name__ == "__main__":
    main()
