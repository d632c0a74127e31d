"""The limits in OpenAI's words: the 404 of a model not allowed, the 429s, and the
``x-ratelimit-*`` headers every answer to a limited key carries."""

from __future__ import annotations

import math

from ..core.cost import money
from ..errors import GatewayError
from .store import Check, Decision

PER_MINUTE = {"requests": "requests per min (RPM)", "tokens": "tokens per min (TPM)"}


class RateLimited(GatewayError):
    status = 429
    type = "requests"
    code = "rate_limit_exceeded"


class QuotaExceeded(GatewayError):
    status = 429
    type = "insufficient_quota"
    code = "insufficient_quota"


class LimitsUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "limits_unavailable"


def duration(seconds: float) -> str:
    """OpenAI's reset format: ``20ms``, ``1.5s``, ``6m0s``, ``3h12m5s``."""
    if seconds < 1:
        return f"{max(math.ceil(seconds * 1000), 0)}ms"
    if seconds < 60:
        return f"{math.ceil(seconds * 10) / 10:g}s"
    whole = math.ceil(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes}m{secs}s" if hours else f"{minutes}m{secs}s"


def amount(units: int, currency: str) -> str:
    """Micro-units as a reader expects money: ``500.00 USD``, ``0.0125 USD``."""
    value = money(units)
    shown = f"{value:.2f}" if value == round(value, 2) else f"{value.normalize():f}"
    return f"{shown} {currency}"


def refusal(checks: list[Check], decision: Decision, currency: str = "USD") -> GatewayError:
    assert decision.refused is not None
    check = checks[decision.refused]
    used, who, wait = decision.used[decision.refused], check.scope.label, decision.retry_after
    headers = limit_headers(checks, decision, admitted=False)
    retry = [(b"retry-after", str(max(math.ceil(wait), 1)).encode())]
    if decision.too_large:
        headers.append((b"x-should-retry", b"false"))  # it would be refused again
    else:
        headers += retry
    if check.kind == "parallel":
        return RateLimited(
            f"Too many requests in flight for {who}: the limit is {check.limit} at a time. "
            "Try again when one of them has ended.",
            headers=headers,
        )
    if check.kind == "cost":
        period = {"day": "daily", "month": "monthly"}[check.scope.limits.budget_period]
        headers.append((b"x-should-retry", b"false"))
        spent = used >= check.limit
        return QuotaExceeded(
            f"{who}: {period} budget of {amount(check.limit, currency)} "
            + ("spent" if spent else f"nearly spent ({amount(used, currency)} used)")
            + f"; this request may cost up to {amount(check.amount, currency)}. "
            f"The budget resets in {duration(decision.resets[decision.refused])}.",
            headers=[h for h in headers if h[0] != b"retry-after"],
        )
    if check.kind == "budget":
        period = check.scope.limits.budget_period
        headers.append((b"x-should-retry", b"false"))
        return QuotaExceeded(
            f"You exceeded your current quota: {who} has used {used} of its {check.limit} "
            f"tokens for the {period}, and this request reserves {check.amount}. "
            f"The budget resets in {duration(decision.resets[decision.refused])}.",
            headers=[h for h in headers if h[0] != b"retry-after"],
        )
    if decision.too_large:
        message = (
            f"Request too large for {who} on {PER_MINUTE[check.kind]}: Limit {check.limit}, "
            f"Requested {check.amount}. Lower the prompt or max_tokens."
        )
    else:
        message = (
            f"Rate limit reached for {who} on {PER_MINUTE[check.kind]}: Limit {check.limit}, "
            f"Used {used}, Requested {check.amount}. Please try again in {duration(wait)}."
        )
    return RateLimited(message, type=check.kind, headers=headers)


_NAMES = {
    kind: tuple(f"x-ratelimit-{part}-{kind}".encode() for part in ("limit", "remaining", "reset"))
    for kind in ("requests", "tokens")
}


def limit_headers(
    checks: list[Check], decision: Decision, admitted: bool = True
) -> list[tuple[bytes, bytes]]:
    """For requests and for tokens, the tightest limit that applies: its limit, what is left
    after this request (if admitted), and when its oldest count leaves the window."""
    tightest: dict[str, tuple[int, int, float]] = {}
    for check, used, reset in zip(checks, decision.used, decision.resets, strict=True):
        if check.kind in _NAMES:
            left = check.limit - used - (check.amount if admitted else 0)
            best = tightest.get(check.kind)
            if best is None or left < best[0]:
                tightest[check.kind] = (left, check.limit, reset)
    headers: list[tuple[bytes, bytes]] = []
    for kind, (left, limit, reset) in tightest.items():
        if admitted and reset == 0:
            reset = 60.0  # this request is the window's oldest count
        names = _NAMES[kind]
        headers += [
            (names[0], b"%d" % limit),
            (names[1], b"%d" % max(left, 0)),
            (names[2], duration(reset).encode()),
        ]
    return headers
