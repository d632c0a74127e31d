"""OpenTelemetry: GenAI spans from the client through the gateway into the engine, and the
GenAI metrics; off unless an OTLP endpoint is configured (``options``). Nothing here but
``options`` is imported while it is off: the SDK is not loaded, and costs nothing."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .options import TracingOptions

if TYPE_CHECKING:
    from .pipeline import Pipeline
    from .spans import GenAITracing


def build(options: TracingOptions, version: str = "") -> tuple[GenAITracing, Pipeline]:
    """The observer and the pipeline it exports through (``options.enabled`` must be true)."""
    from .instruments import Instruments
    from .pipeline import Pipeline
    from .spans import GenAITracing

    pipeline = Pipeline(options, version)
    instruments = Instruments(pipeline.meter) if pipeline.meter is not None else None
    observer = GenAITracing(pipeline.recorder, instruments, options.capture_content, options.w3c)
    return observer, pipeline


__all__ = ["TracingOptions", "build"]
