"""The GenAI metrics (client token usage and operation duration, the server's time to first
token and per output token), with the conventions' bucket boundaries."""

from __future__ import annotations

from opentelemetry.metrics import Histogram, Meter

from . import names


class Instruments:
    __slots__ = ("token_usage", "duration", "time_to_first_token", "time_per_output_token")

    def __init__(self, meter: Meter) -> None:
        self.token_usage: Histogram = meter.create_histogram(
            names.CLIENT_TOKEN_USAGE,
            unit="{token}",
            description="Number of input and output tokens used.",
            explicit_bucket_boundaries_advisory=list(names.TOKEN_USAGE_BUCKETS),
        )
        self.duration: Histogram = meter.create_histogram(
            names.CLIENT_OPERATION_DURATION,
            unit="s",
            description="GenAI operation duration.",
            explicit_bucket_boundaries_advisory=list(names.DURATION_BUCKETS),
        )
        self.time_to_first_token: Histogram = meter.create_histogram(
            names.SERVER_TIME_TO_FIRST_TOKEN,
            unit="s",
            description="Time to generate first token for successful responses.",
            explicit_bucket_boundaries_advisory=list(names.TIME_TO_FIRST_TOKEN_BUCKETS),
        )
        self.time_per_output_token: Histogram = meter.create_histogram(
            names.SERVER_TIME_PER_OUTPUT_TOKEN,
            unit="s",
            description="Time per output token generated after the first token.",
            explicit_bucket_boundaries_advisory=list(names.TIME_PER_OUTPUT_TOKEN_BUCKETS),
        )
