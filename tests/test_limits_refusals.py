from llm_gateway.limits.refusals import duration, limit_headers, refusal
from llm_gateway.limits.spec import Limits, Scope
from llm_gateway.limits.store import Check, Decision

KEY = Scope("key", "ab", "team-key", Limits(rpm=10, tpm=1000), "kab")
OWNER = Scope("user", "4", "ann", Limits(rpm=5), "kab")


def test_durations_in_openais_format():
    assert [duration(s) for s in (0.0201, 1.5, 59.99, 60, 360, 11525)] == [
        "21ms",
        "1.5s",
        "60s",
        "1m0s",
        "6m0s",
        "3h12m5s",
    ]


def test_headers_report_the_tightest_limit_after_this_request():
    checks = [
        Check("requests", KEY, "a", 10, 1),
        Check("tokens", KEY, "b", 1000, 300),
        Check("requests", OWNER, "c", 5, 1),
    ]
    headers = dict(limit_headers(checks, Decision(None, False, 0, 0, [2, 100, 3], [5, 0, 30])))
    assert headers == {
        b"x-ratelimit-limit-requests": b"5",
        b"x-ratelimit-remaining-requests": b"1",
        b"x-ratelimit-reset-requests": b"30s",
        b"x-ratelimit-limit-tokens": b"1000",
        b"x-ratelimit-remaining-tokens": b"600",
        b"x-ratelimit-reset-tokens": b"1m0s",  # this request is the window's only count
    }


def test_refusals_say_which_limit_what_it_is_and_when_it_resets():
    checks = [Check("requests", OWNER, "c", 5, 1)]
    error = refusal(checks, Decision(0, False, 12.3, 0, [5], [12.3]))
    assert (error.status, error.type, error.code) == (429, "requests", "rate_limit_exceeded")
    assert error.message == (
        "Rate limit reached for user 'ann' on requests per min (RPM): Limit 5, Used 5, "
        "Requested 1. Please try again in 12.3s."
    )
    assert (b"retry-after", b"13") in error.headers()
    budget = Check("budget", KEY, "d", 100, 30, 0)
    error = refusal([budget], Decision(0, False, 7200, 0, [90], [7200]))
    assert (error.status, error.type, error.code) == (
        429,
        "insufficient_quota",
        "insufficient_quota",
    )
    assert "has used 90 of its 100 tokens for the day" in error.message
    assert "resets in 2h0m0s" in error.message
    assert dict(error.headers())[b"x-should-retry"] == b"false"
