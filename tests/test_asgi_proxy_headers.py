import asyncio
import ipaddress

from django.test import override_settings

from llm_gateway.asgi.proxy_headers import ProxyHeadersMiddleware, forwarded_client

PROXIES = [ipaddress.ip_network("10.0.0.0/24"), ipaddress.ip_network("127.0.0.1")]


def test_the_client_is_the_last_untrusted_hop():
    assert forwarded_client(b"203.0.113.7", PROXIES) == "203.0.113.7"
    assert forwarded_client(b"6.6.6.6, 203.0.113.7, 10.0.0.9", PROXIES) == "203.0.113.7"
    assert forwarded_client(b"10.0.0.4, 10.0.0.9", PROXIES) == "10.0.0.4"  # all proxies
    assert forwarded_client(b"not-an-address", PROXIES) is None
    assert forwarded_client(b"[2001:db8::1]", PROXIES) == "2001:db8::1"


def seen_scope(client, headers):
    seen = {}

    async def app(scope, receive, send):
        seen.update(scope)

    scope = {"type": "http", "client": client, "scheme": "http", "headers": headers}
    asyncio.run(ProxyHeadersMiddleware(app)(scope, None, None))
    return seen


@override_settings(LLM_GATEWAY_TRUSTED_PROXIES="127.0.0.1, 10.0.0.0/24")
def test_only_trusted_peers_are_believed():
    headers = [(b"x-forwarded-for", b"6.6.6.6, 203.0.113.7"), (b"x-forwarded-proto", b"https")]
    trusted = seen_scope(("10.0.0.9", 5000), headers)
    assert trusted["client"] == ("203.0.113.7", 0) and trusted["scheme"] == "https"
    spoofed = seen_scope(("198.51.100.1", 5000), headers)
    assert spoofed["client"] == ("198.51.100.1", 5000) and spoofed["scheme"] == "http"
    split = seen_scope(
        ("127.0.0.1", 1), [(b"x-forwarded-for", b"6.6.6.6"), (b"x-forwarded-for", b"203.0.113.7")]
    )
    assert split["client"] == ("203.0.113.7", 0)


def test_nobody_is_trusted_by_default():
    headers = [(b"x-forwarded-for", b"203.0.113.7")]
    assert seen_scope(("127.0.0.1", 5000), headers)["client"] == ("127.0.0.1", 5000)
