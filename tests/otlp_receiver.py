"""A real OTLP/HTTP receiver for the tracing tests: a server process that decodes what the
gateway's exporter sends (protobuf, as on the wire) with ``opentelemetry-proto``.

    python tests/otlp_receiver.py --port 4318

    POST /v1/traces, /v1/metrics   what the exporters send (application/x-protobuf)
    GET  /_spans                   every span received, decoded (ids in hex)
    GET  /_metrics                 every histogram data point received
    GET  /_posts                   each export's path and content type
    POST /_reset                   forget them
    --discard                      read each export and answer it, decoding nothing (the
                                   benchmark's collector: bench/feature_cost.py --feature tracing)
"""

from __future__ import annotations

import argparse
from typing import Any

from aiohttp import web
from google.protobuf.message import DecodeError
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import (
    ExportMetricsServiceRequest,
    ExportMetricsServiceResponse,
)
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import (
    ExportTraceServiceRequest,
    ExportTraceServiceResponse,
)
from opentelemetry.proto.common.v1.common_pb2 import AnyValue, KeyValue

SPANS: list[dict[str, Any]] = []
POINTS: list[dict[str, Any]] = []
POSTS: list[dict[str, str]] = []
KINDS = {0: "UNSPECIFIED", 1: "INTERNAL", 2: "SERVER", 3: "CLIENT", 4: "PRODUCER", 5: "CONSUMER"}


def value_of(value: AnyValue) -> Any:
    kind = value.WhichOneof("value")
    if kind == "array_value":
        return [value_of(v) for v in value.array_value.values]
    if kind is None:
        return None
    return getattr(value, kind)


def attributes(pairs: list[KeyValue]) -> dict[str, Any]:
    return {pair.key: value_of(pair.value) for pair in pairs}


async def traces(request: web.Request) -> web.Response:
    POSTS.append({"path": request.path, "content_type": request.content_type})
    message = ExportTraceServiceRequest()
    try:
        message.ParseFromString(await request.read())
    except DecodeError:
        return web.Response(status=400, text="not an ExportTraceServiceRequest")
    for resource_spans in message.resource_spans:
        resource = attributes(list(resource_spans.resource.attributes))
        for scope_spans in resource_spans.scope_spans:
            for span in scope_spans.spans:
                SPANS.append(
                    {
                        "trace_id": span.trace_id.hex(),
                        "span_id": span.span_id.hex(),
                        "parent_span_id": span.parent_span_id.hex(),
                        "name": span.name,
                        "kind": KINDS.get(span.kind, str(span.kind)),
                        "attributes": attributes(list(span.attributes)),
                        "status": span.status.code,  # 0 unset, 1 ok, 2 error
                        "start": span.start_time_unix_nano,
                        "end": span.end_time_unix_nano,
                        "scope": scope_spans.scope.name,
                        "schema_url": scope_spans.schema_url,
                        "resource": resource,
                    }
                )
    body = ExportTraceServiceResponse().SerializeToString()
    return web.Response(body=body, content_type="application/x-protobuf")


async def metrics(request: web.Request) -> web.Response:
    POSTS.append({"path": request.path, "content_type": request.content_type})
    message = ExportMetricsServiceRequest()
    try:
        message.ParseFromString(await request.read())
    except DecodeError:
        return web.Response(status=400, text="not an ExportMetricsServiceRequest")
    for resource_metrics in message.resource_metrics:
        resource = attributes(list(resource_metrics.resource.attributes))
        for scope_metrics in resource_metrics.scope_metrics:
            for metric in scope_metrics.metrics:
                if metric.WhichOneof("data") != "histogram":
                    continue
                for point in metric.histogram.data_points:
                    POINTS.append(
                        {
                            "name": metric.name,
                            "unit": metric.unit,
                            "attributes": attributes(list(point.attributes)),
                            "count": point.count,
                            "sum": point.sum,
                            "bounds": list(point.explicit_bounds),
                            "bucket_counts": list(point.bucket_counts),
                            "service": resource.get("service.name"),
                        }
                    )
    body = ExportMetricsServiceResponse().SerializeToString()
    return web.Response(body=body, content_type="application/x-protobuf")


async def spans(request: web.Request) -> web.Response:
    return web.json_response(SPANS)


async def points(request: web.Request) -> web.Response:
    return web.json_response(POINTS)


async def posts(request: web.Request) -> web.Response:
    return web.json_response(POSTS)


async def reset(request: web.Request) -> web.Response:
    SPANS.clear()
    POINTS.clear()
    POSTS.clear()
    return web.json_response({})


async def discard(request: web.Request) -> web.Response:
    await request.read()
    return web.Response(body=b"", content_type="application/x-protobuf")


def make_app(decode: bool = True) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app.router.add_post("/v1/traces", traces if decode else discard)
    app.router.add_post("/v1/metrics", metrics if decode else discard)
    app.router.add_get("/_spans", spans)
    app.router.add_get("/_metrics", points)
    app.router.add_get("/_posts", posts)
    app.router.add_post("/_reset", reset)
    return app


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, default=4318)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--discard", action="store_true")
    args = parser.parse_args()
    web.run_app(make_app(not args.discard), host=args.host, port=args.port, print=None)
