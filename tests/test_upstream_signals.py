"""The engines' load read from their /metrics text (tests/engine_metrics/: each engine's
format, with the metrics around them that a real scrape carries)."""

from pathlib import Path

import pytest

from llm_gateway.upstream.signals import EngineLoad, parse_load

TEXTS = Path(__file__).parent / "engine_metrics"


def load(name: str) -> EngineLoad | None:
    return parse_load((TEXTS / name).read_text())


def test_vllm_sums_its_data_parallel_ranks_and_averages_their_kv_use():
    assert load("vllm.txt") == EngineLoad("vllm", 7.0, 95.0, pytest.approx(0.8))


def test_vllm_before_v0_10_names_its_kv_use_gpu_cache():
    assert load("vllm_v0.txt") == EngineLoad("vllm", 0.0, 12.0, 0.25)


def test_sglang():
    assert load("sglang.txt") == EngineLoad("sglang", 2.0, 16.0, 0.28)


def test_llama_cpp_server_has_no_kv_use():
    assert load("llamacpp.txt") == EngineLoad("llamacpp", 1.0, 4.0, None)


def test_text_of_no_known_engine_is_no_signal():
    gateway_own = "# TYPE llm_gateway_requests_total counter\nllm_gateway_requests_total 3\n"
    assert parse_load(gateway_own) is None
    assert parse_load("") is None


def test_malformed_text_raises_value_error():
    with pytest.raises(ValueError):
        parse_load('vllm:num_requests_waiting{engine="0" 3\n')
