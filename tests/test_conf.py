import pytest
from django.test import override_settings

from llm_gateway.conf import conf


def test_defaults():
    assert conf.MAX_BODY_BYTES == 32 * 1024 * 1024
    assert conf.CONNECT_TIMEOUT == 5.0 and conf.READ_TIMEOUT == 600.0
    assert conf.AUTH_PREFIXES == ["/v1"]
    assert conf.WATCHDOG_INTERVAL == 5.0 and conf.WATCHDOG_FAILURES == 2
    assert conf.EXIT_ON_ENGINE_DEATH is False


def test_settings_win_over_the_environment_and_are_read_at_call_time(monkeypatch):
    monkeypatch.setenv("LLM_GATEWAY_READ_TIMEOUT", "12")
    conf.reload()
    assert conf.READ_TIMEOUT == 12.0
    with override_settings(LLM_GATEWAY_READ_TIMEOUT=30):
        assert conf.READ_TIMEOUT == 30.0
    monkeypatch.setenv("LLM_GATEWAY_EXIT_ON_ENGINE_DEATH", "TRUE")
    monkeypatch.setenv("LLM_GATEWAY_API_KEYS", " a , ,b ")
    conf.reload()
    assert conf.EXIT_ON_ENGINE_DEATH is True
    assert conf.API_KEYS == ["a", "b"]
    monkeypatch.delenv("LLM_GATEWAY_API_KEYS")
    assert conf.API_KEYS == ["a", "b"]  # remembered until a reload or a settings change
    with override_settings(LLM_GATEWAY_CONNECT_TIMEOUT=1):
        assert conf.API_KEYS == []


def test_an_empty_request_id_header_means_none():
    assert conf.UPSTREAM_REQUEST_ID_HEADER == "X-Request-Id"
    with override_settings(LLM_GATEWAY_UPSTREAM_REQUEST_ID_HEADER=""):
        assert conf.UPSTREAM_REQUEST_ID_HEADER == ""


def test_upstream_url_loses_its_trailing_slash():
    with override_settings(LLM_GATEWAY_UPSTREAM_URL="http://h:1/v1/"):
        assert conf.UPSTREAM_URL == "http://h:1/v1"


def test_a_sentinel_url_is_a_redis_url_and_a_broken_one_is_refused():
    url = "redis+sentinel://s1:26379,s2:26379/mymaster/0"
    with override_settings(LLM_GATEWAY_REDIS_URL=url):
        assert url == conf.REDIS_URL
    broken = override_settings(LLM_GATEWAY_REDIS_URL="redis+sentinel://s1:26379/")
    with broken, pytest.raises(ValueError, match="names its sentinels and master"):
        conf.REDIS_URL  # noqa: B018 (the read is the test)
    other = override_settings(LLM_GATEWAY_REDIS_URL="http://s1:6379/0")
    with other, pytest.raises(ValueError, match="redis://, rediss:// or redis"):
        conf.REDIS_URL  # noqa: B018
