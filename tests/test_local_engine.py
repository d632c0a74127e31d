import importlib.metadata

import pytest
from django.core.management import CommandError, call_command

from llm_gateway.local_engine import LocalEngineUnavailable, engine_environment
from llm_gateway.local_engine import llama_cpp as local_engine


def test_engine_environment_keeps_nothing_the_engine_would_read_as_settings():
    env = engine_environment(
        {
            "PATH": "/bin",
            "HOME": "/root",
            "PORT": "8000",
            "API_KEY": "s",
            "MODEL": "x",
            "HOST": "0.0.0.0",
        }
    )
    assert env == {"PATH": "/bin", "HOME": "/root"}


def test_missing_packages_give_a_clear_message(monkeypatch):
    def missing(name):
        raise importlib.metadata.PackageNotFoundError(name)

    monkeypatch.setattr(importlib.metadata, "distribution", missing)
    with pytest.raises(LocalEngineUnavailable, match="requirements-local-engine.txt"):
        local_engine.model_path()
    monkeypatch.setattr(local_engine.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(
        CommandError, match="llama-cpp-python is not installed.*requirements-local-engine"
    ):
        call_command("run_local_engine", "--port", "1")
