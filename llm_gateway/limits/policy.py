"""The limits as a policy of the core: refuse, or admit holding a reservation that the
request's end settles. A key with no limits costs one attribute read."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import os
import time
from dataclasses import dataclass

import orjson

from ..core.hooks import Admission, Policy
from ..core.record import RequestRecord
from ..core.request import GatewayRequest
from ..errors import ModelNotFound
from .cluster_store import ClusterStore
from .plan import Plan
from .redis_client import RedisUnavailable
from .redis_store import RedisStore
from .refusals import LimitsUnavailable, limit_headers, refusal
from .reserve import requested_model, reserved_parts
from .spec import Scope
from .store import Check, Decision, LimitStore, MemoryStore

logger = logging.getLogger(__name__)

RETRY_STORE_SECONDS = 1.0  # after a failure, requests skip the store this long (no stalls)


@dataclass(frozen=True, slots=True)
class LimitsOptions:
    redis_url: str = ""  # empty: this process counts alone, in memory
    redis_cluster: bool = False  # redis_url names one node of a Redis Cluster
    fail: str = "open"  # Redis unreachable: open (serve uncounted) or closed (503)
    timeout: float = 0.5  # longest wait for Redis before it counts as unreachable
    lease_seconds: float = 30.0  # a dead process's slot is free after this long
    default_max_tokens: int = 1024  # what a request without max_tokens reserves
    namespace: str = "llm_gateway"  # prefix of the Redis keys
    currency: str = "USD"  # of the money budgets, as refusals name it


class LimitsAdmission(Admission):
    def __init__(
        self,
        policy: LimitsPolicy,
        checks: list[Check],
        decision: Decision | None,
        lease: str,
        filtered: tuple[Scope, ...] = (),
    ) -> None:
        self.policy, self.checks, self.decision, self.lease = policy, checks, decision, lease
        self.headers = limit_headers(checks, decision) if decision is not None else []
        self.filtered = filtered  # GET /models: the scopes whose allow-lists filter the list
        self.rewrites = bool(filtered)

    def settle(self, record: RequestRecord) -> None:
        if self.decision is not None:
            checks = self.checks
            self.policy.release(self, tokens_used(record, checks), cost_used(record, checks))

    def rewrite(self, request: GatewayRequest, content: bytes) -> bytes:
        """``GET /models``: only the models this key may use (its own and its owner's lists)."""
        try:
            listing = orjson.loads(content)
            data = listing["data"]
            listing["data"] = [
                entry
                for entry in data
                if all(scope.limits.allows(str(entry.get("id"))) for scope in self.filtered)
            ]
        except (orjson.JSONDecodeError, KeyError, TypeError, AttributeError):
            return b'{"object":"list","data":[]}'  # unreadable: show nothing rather than all
        return orjson.dumps(listing)


def tokens_used(record: RequestRecord, checks: list[Check]) -> int:
    """What to charge: the usage if known; nothing if no answer came; else the reservation."""
    if record.prompt_tokens is not None or record.completion_tokens is not None:
        return (record.prompt_tokens or 0) + (record.completion_tokens or 0)
    if record.ttfb is None:
        return 0
    return max((c.amount for c in checks if c.kind in ("tokens", "budget")), default=0)


def cost_used(record: RequestRecord, checks: list[Check]) -> int:
    """The same for money, in micro-units: the request's cost (``pricing`` set it at settle)
    if known; nothing if no answer came; else what was reserved."""
    if record.cost_micro is not None:
        return record.cost_micro
    if record.ttfb is None:
        return 0
    return max((c.amount for c in checks if c.kind == "cost"), default=0)


class LimitsPolicy(Policy):
    def __init__(self, options: LimitsOptions | None = None) -> None:
        self.options = options or LimitsOptions()
        self._store: LimitStore | None = None
        self._down_until = 0.0
        self._warned = False
        self._leases = itertools.count()
        self._lease_prefix = f"{os.getpid()}-{os.urandom(4).hex()}-"
        self.held: dict[str, set[str]] = {}  # parallel counter -> this process's leases
        self._renewer: asyncio.Task[None] | None = None
        self._plans: dict[int, Plan] = {}

    @property
    def store(self) -> LimitStore:
        if self._store is None:
            options = self.options
            url = options.redis_url
            if not url:
                self._store = MemoryStore()
            elif options.redis_cluster:
                self._store = ClusterStore(url, options.timeout)
            else:
                self._store = RedisStore(url, options.timeout)
        return self._store

    async def admit(self, request: GatewayRequest, record: RequestRecord) -> Admission | None:
        principal = request.api_key
        if principal is None or not principal.scopes:
            return None
        plan = self.plan_for(principal.scopes)
        filtered: tuple[Scope, ...] = ()
        if allowed := plan.allowed:
            if request.method == "GET" and request.path == "/models":
                filtered = allowed
            else:
                model = requested_model(request)
                if model is None or not all(scope.limits.allows(model) for scope in allowed):
                    raise ModelNotFound(model)
        if not plan.planned:
            return LimitsAdmission(self, [], None, "", filtered) if filtered else None
        tokens, cost = self._reservation(request, record, plan)
        checks = plan.checks(tokens, cost)
        lease = self._lease_prefix + str(next(self._leases)) if plan.holds_slot else ""
        decision = await self._decide(checks, lease, record)
        if decision is None:  # the store is unreachable and the gateway fails open
            return LimitsAdmission(self, [], None, "", filtered) if filtered else None
        if decision.refused is not None:
            record.limited = checks[decision.refused].kind
            raise refusal(checks, decision, self.options.currency)
        if lease:
            if not self.held:
                self._ensure_renewer()
            for check in checks:
                if check.code == "p":
                    self.held.setdefault(check.counter, set()).add(lease)
        return LimitsAdmission(self, checks, decision, lease, filtered)

    def plan_for(self, scopes: tuple[Scope, ...]) -> Plan:
        """The checks of these scopes, worked out once (by identity: the key store keeps one
        scopes tuple per key until a refresh changes it) and again after a budget period."""
        plan = self._plans.get(id(scopes))
        if plan is None or plan.scopes is not scopes or time.time() >= plan.until:
            if len(self._plans) > 10_000:
                self._plans.clear()
            plan = Plan(scopes, self.options.namespace, time.time())
            self._plans[id(scopes)] = plan
        return plan

    def _reservation(
        self, request: GatewayRequest, record: RequestRecord, plan: Plan
    ) -> tuple[int, int]:
        """Tokens and cost (micro-units) at most: the prompt's estimate plus the most the
        answer may hold, at the model's prices (an unpriced model costs nothing)."""
        if not (plan.counts_tokens or plan.counts_cost) or (
            request.payload is None and request.method == "GET"
        ):
            return 0, 0
        prompt, completion = reserved_parts(
            request.path, request.payload, self.options.default_max_tokens
        )
        price = record.price
        cost = price.micro_cost(prompt, 0, completion) if price and plan.counts_cost else 0
        return prompt + completion, cost

    async def _decide(
        self, checks: list[Check], lease: str, record: RequestRecord
    ) -> Decision | None:
        """The store's decision; None when it cannot be reached and the gateway fails open."""
        if time.monotonic() >= self._down_until:
            try:
                decision = await self.store.admit(checks, lease, self.options.lease_seconds)
            except RedisUnavailable as exc:
                self._down_until = time.monotonic() + RETRY_STORE_SECONDS
                if not self._warned:
                    self._warned = True
                    logger.warning(
                        "limits store unreachable (limits %s): %s", self.options.fail, exc
                    )
            else:
                if self._warned:
                    self._warned = False
                    logger.warning("limits store reachable again: limits are enforced")
                return decision
        if self.options.fail == "closed":
            record.limited = "unavailable"
            raise LimitsUnavailable("The rate limit store is unreachable; try again shortly.")
        record.limited = "unchecked"
        return None

    def release(self, admission: LimitsAdmission, actual: int, cost: int = 0) -> None:
        assert admission.decision is not None
        if admission.lease:
            for check in admission.checks:
                if check.kind == "parallel" and (leases := self.held.get(check.counter)):
                    leases.discard(admission.lease)
                    if not leases:
                        del self.held[check.counter]
        try:
            self.store.settle(admission.checks, admission.decision, admission.lease, actual, cost)
        except RedisUnavailable as exc:  # the lease runs out by itself; the window too
            logger.warning("limits settle failed: %s", exc)

    def _ensure_renewer(self) -> None:
        task = self._renewer
        if task is None or task.done() or task.get_loop() is not asyncio.get_running_loop():
            self._renewer = asyncio.get_running_loop().create_task(self._renew_forever())

    async def _renew_forever(self) -> None:
        """Leases outlive a long stream only while this process lives to renew them."""
        while True:
            await asyncio.sleep(self.options.lease_seconds / 3)
            held = {counter: sorted(leases) for counter, leases in self.held.items()}
            try:
                self.store.renew(held, self.options.lease_seconds)
            except RedisUnavailable as exc:
                logger.warning("limits lease renewal failed: %s", exc)

    async def aclose(self) -> None:
        if self._renewer is not None:
            self._renewer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._renewer
            self._renewer = None
        if self._store is not None:
            await self._store.aclose()
            self._store = None
