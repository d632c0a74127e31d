from django.core.checks import run_checks
from django.test import override_settings


def ids(**settings):
    with override_settings(**settings):
        return {m.id for m in run_checks() if m.id and m.id.startswith("llm_gateway")}


def test_good_settings_have_no_messages():
    assert ids(LLM_GATEWAY_UPSTREAM_URL="http://127.0.0.1:8001/v1") == set()


def test_each_misconfiguration_has_its_id():
    assert ids(LLM_GATEWAY_UPSTREAM_URL="") == {"llm_gateway.W001"}
    assert "llm_gateway.E001" in ids(LLM_GATEWAY_UPSTREAM_URL="ftp://x/v1")
    assert "llm_gateway.E001" in ids(LLM_GATEWAY_UPSTREAM_URL="127.0.0.1:8001")
    assert "llm_gateway.E002" in ids(
        LLM_GATEWAY_UPSTREAM_URL="http://x/v1", LLM_GATEWAY_AUTH_PREFIXES="v1"
    )
    assert "llm_gateway.E003" in ids(
        LLM_GATEWAY_UPSTREAM_URL="http://x/v1", LLM_GATEWAY_READ_TIMEOUT="soon"
    )
    assert "llm_gateway.E003" in ids(
        LLM_GATEWAY_UPSTREAM_URL="http://x/v1", LLM_GATEWAY_WATCHDOG_INTERVAL=0
    )
    assert "llm_gateway.W002" in ids(
        LLM_GATEWAY_UPSTREAM_URL="http://x/v1", LLM_GATEWAY_API_KEYS="short"
    )
