"""A real engine on a CPU-only machine, for the quick start and the integration tests:
llama.cpp's OpenAI server with SmolLM2-135M-Instruct (``llama_cpp``)."""

from .llama_cpp import (
    MODEL_ALIAS,
    LocalEngineUnavailable,
    engine_argv,
    engine_environment,
    model_path,
)

__all__ = [
    "MODEL_ALIAS",
    "LocalEngineUnavailable",
    "engine_argv",
    "engine_environment",
    "model_path",
]
