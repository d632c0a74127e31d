import sys

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


def test_values_that_cannot_be_parsed_fail_at_start_up():
    for name, value in [
        ("LLM_GATEWAY_LOG_RESPONSES", "maybe"),
        ("LLM_GATEWAY_POOL_SIZE", "lots"),
        ("LLM_GATEWAY_RELAY_PREFIX", "v1"),
        ("LLM_GATEWAY_ALLOW_UNAUTHENTICATED", "sure"),
        ("LLM_GATEWAY_LIMITS_FAIL", "sometimes"),
        ("LLM_GATEWAY_REDIS_URL", "http://127.0.0.1:6379"),
        ("LLM_GATEWAY_LIMITS_LEASE_SECONDS", "0"),
    ]:
        assert ids(LLM_GATEWAY_UPSTREAM_URL="http://x/v1", **{name: value}) == {
            "llm_gateway.E003"
        }, name


def test_an_unguarded_relay_prefix_is_an_error_and_an_open_gateway_a_warning():
    url = {"LLM_GATEWAY_UPSTREAM_URL": "http://x/v1"}
    assert ids(**url, LLM_GATEWAY_AUTH_PREFIXES="/v1/chat") == {"llm_gateway.E004"}
    assert ids(**url, LLM_GATEWAY_AUTH_PREFIXES="/api") == {"llm_gateway.E004"}
    assert ids(**url, LLM_GATEWAY_AUTH_PREFIXES="/api,/v1") == set()
    # the Django face's urls are included at / in the example project: /v1/ is checked too
    assert ids(**url, LLM_GATEWAY_RELAY_PREFIX="off", LLM_GATEWAY_AUTH_PREFIXES="/x") == {
        "llm_gateway.E004"
    }
    assert ids(**url, LLM_GATEWAY_AUTH_PREFIXES="/api", LLM_GATEWAY_ALLOW_UNAUTHENTICATED=True) == {
        "llm_gateway.W003"
    }


def test_middleware_that_hurts_streams_is_reported():
    from django.conf import settings

    url = {"LLM_GATEWAY_UPSTREAM_URL": "http://x/v1"}
    gzip = [*settings.MIDDLEWARE, "django.middleware.gzip.GZipMiddleware"]
    assert ids(**url, MIDDLEWARE=gzip) == {"llm_gateway.W004"}
    sync_only = [*settings.MIDDLEWARE, "tests.test_checks.SyncOnly"]
    assert ids(**url, MIDDLEWARE=sync_only) == {"llm_gateway.W005"}


class SyncOnly:
    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        return self.get_response(request)


def messages(**settings):
    with override_settings(**settings):
        return [str(m) for m in run_checks() if m.id and m.id.startswith("llm_gateway")]


def test_a_bad_replica_list_is_reported():
    good = '[{"url": "http://a:8000/v1", "models": ["m"]}, {"url": "http://b:8000/v1"}]'
    assert ids(LLM_GATEWAY_UPSTREAM_URL="", LLM_GATEWAY_UPSTREAMS=good) == set()
    assert ids(LLM_GATEWAY_UPSTREAMS='[{"url": "http://a/v1", "weight": -1}]') == {
        "llm_gateway.E003"
    }
    assert ids(LLM_GATEWAY_ROUTING="fastest") == {"llm_gateway.E003"}
    found = messages(
        LLM_GATEWAY_UPSTREAMS='[{"url": "http://a/v1"}, {"url": "a:8000"},'
        ' {"url": "http://a/v1"}, {"url": "http://c/v1", "models": []}]'
    )
    assert len(found) == 3, found
    assert "replica 1 (a:8000): the url must be an http:// or https:// URL" in found[0]
    assert "replica 2: http://a/v1 is listed twice" in found[1]
    assert "serves no model" in found[2]


def test_tracing_configured_without_its_sdk_is_an_error(monkeypatch):
    good = {"LLM_GATEWAY_UPSTREAM_URL": "http://x/v1"}
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector:4318")
    assert "llm_gateway.E008" not in ids(**good)  # installed: fine
    monkeypatch.setitem(sys.modules, "opentelemetry.sdk", None)  # as if not installed
    assert "llm_gateway.E008" in ids(**good)
    assert "llm_gateway.E008" not in ids(**good, LLM_GATEWAY_OTEL="off")
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_ENDPOINT")
    assert "llm_gateway.E008" not in ids(**good)  # not configured: nothing to import


def test_the_audit_trail_needs_auditlog_installed():
    from django.conf import settings

    good = {"LLM_GATEWAY_UPSTREAM_URL": "http://x/v1"}
    without = [app for app in settings.INSTALLED_APPS if app != "auditlog"]
    assert "llm_gateway.E009" not in ids(**good)
    assert "llm_gateway.E009" in ids(**good, INSTALLED_APPS=without)


def test_the_portal_needs_sessions_authentication_and_csrf():
    from django.conf import settings

    good = {"LLM_GATEWAY_UPSTREAM_URL": "http://x/v1"}
    assert "llm_gateway.E011" not in ids(**good)  # project.urls includes it, MIDDLEWARE has all
    no_csrf = [m for m in settings.MIDDLEWARE if "csrf" not in m]
    assert "llm_gateway.E011" in ids(**good, MIDDLEWARE=no_csrf)
    # Not included (the API-only project): nothing to check.
    api_only = {"MIDDLEWARE": no_csrf, "ROOT_URLCONF": "project.urls_api"}
    assert "llm_gateway.E011" not in ids(**good, **api_only)
