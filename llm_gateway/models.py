"""The app's tables: API keys (a digest, a display prefix, the dates that make a key usable,
its limits), a user's and a team's limits shared by all their keys, the price book, the
request log, and the daily usage rollups kept with it. A team is a Django ``auth.Group``."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group
from django.core.cache import cache
from django.db import close_old_connections, models
from django.utils import timezone

from . import audit, keys
from .conf import conf
from .core.cost import Price
from .core.priority import CLASSES, FAIR_FIELDS
from .limits.spec import FIELDS as LIMIT_FIELDS
from .limits.spec import OWNER_LIMITS, TEAM_LIMITS

# What the key store keeps of each key (``keys.store``): its row, its owner's and its team's
# limits.
STORE_FIELDS = (
    "id",
    "name",
    "prefix",
    "digest",
    "expires_at",
    "revoked_at",
    "owner_id",
    "team_id",
    *LIMIT_FIELDS,
    *(OWNER_LIMITS + name for name in LIMIT_FIELDS),
    *(TEAM_LIMITS + name for name in LIMIT_FIELDS),
    *(prefix + name for prefix in ("", OWNER_LIMITS, TEAM_LIMITS) for name in FAIR_FIELDS),
)


class ExactDecimals(models.Model):
    """Decimal columns held at their own places before a save (``Decimal("0.60")`` becomes
    ``0.600000``, as the database returns it), so that an unchanged amount never reads as a
    change in the audit trail, whose diff compares the values as text."""

    class Meta:
        abstract = True

    def save(self, *args: Any, **kwargs: Any) -> None:
        for column in self._meta.concrete_fields:
            value = getattr(self, column.attname)
            if isinstance(column, models.DecimalField) and isinstance(value, Decimal | int):
                places = Decimal(1).scaleb(-(column.decimal_places or 0))
                setattr(self, column.attname, Decimal(value).quantize(places))
        super().save(*args, **kwargs)


class LimitFields(ExactDecimals):
    """Every limit is optional (empty: none). Changes reach every process within a second:
    the key store re-reads the rows of the keys it serves (``KEY_CACHE_SECONDS``)."""

    allowed_models = models.CharField(
        max_length=1000,
        blank=True,
        help_text="Names or glob patterns (llama-3-*), comma-separated; empty: any",
    )
    rpm = models.PositiveIntegerField(
        "requests per minute", null=True, blank=True, help_text="Empty: no limit."
    )
    tpm = models.PositiveIntegerField(
        "tokens per minute",
        null=True,
        blank=True,
        help_text="Prompt + completion: reserved at admission, then settled.",
    )
    max_parallel = models.PositiveIntegerField(
        "requests in flight", null=True, blank=True, help_text="A stream holds its slot to its end."
    )
    token_budget = models.PositiveBigIntegerField(
        null=True, blank=True, help_text="Tokens per budget period (UTC); empty: no budget."
    )
    cost_budget = models.DecimalField(
        "money budget",
        max_digits=18,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="LLM_GATEWAY_CURRENCY per budget period (UTC); empty: no budget.",
    )
    budget_period = models.CharField(
        max_length=5,
        choices=[("day", "day"), ("month", "month")],
        default="day",
        blank=True,
        help_text="Of both budgets.",
    )
    # The scheduler's (``core.schedule``), when the engines are saturated.
    priority = models.CharField(
        "priority class",
        max_length=12,
        choices=[(name, name) for name in CLASSES],
        blank=True,
        help_text="Of its requests; empty: the key's team's, then owner's, else default.",
    )
    max_priority = models.CharField(
        "highest class",
        max_length=12,
        choices=[(name, name) for name in CLASSES],
        blank=True,
        help_text="Highest a client may ask (X-Gateway-Priority); empty: its class.",
    )
    share = models.PositiveIntegerField(
        "fair share",
        null=True,
        blank=True,
        help_text="Its weight among tenants when the engines are saturated; empty: 1.",
    )

    class Meta:
        abstract = True

    def limits_summary(self) -> str:
        parts = [
            f"{self.rpm} rpm" if self.rpm else "",
            f"{self.tpm} tpm" if self.tpm else "",
            f"{self.max_parallel} parallel" if self.max_parallel else "",
            f"{self.token_budget}/{self.budget_period}" if self.token_budget else "",
            f"{self.cost_budget.normalize():f} {conf.CURRENCY}/{self.budget_period}"
            if self.cost_budget
            else "",
            f"models {self.allowed_models}" if self.allowed_models else "",
            f"class {self.priority}" if self.priority else "",
            f"up to {self.max_priority}" if self.max_priority else "",
            f"share {self.share}" if self.share else "",
        ]
        return ", ".join(part for part in parts if part) or "-"


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def named(self, name_or_prefix: str) -> ApiKeyQuerySet:
        """The key of that name, or of that prefix (``sk-1a2b3c4d``, with or without sk-)."""
        ident = name_or_prefix.removeprefix("sk-").split("-")[0]
        return self.filter(models.Q(name=name_or_prefix) | models.Q(prefix=ident))

    def revoke(self) -> int:
        """Revoke every key in the set that is not revoked yet; returns how many. One save a
        key, not one UPDATE for all: each revocation is a change the audit trail records."""
        found = list(self.filter(revoked_at__isnull=True))
        for key in found:
            key.revoke()
        return len(found)

    def usable(self) -> ApiKeyQuerySet:
        """Neither revoked nor expired now."""
        now = timezone.now()
        return self.filter(
            models.Q(expires_at__isnull=True) | models.Q(expires_at__gt=now),
            revoked_at__isnull=True,
        )


class ApiKey(LimitFields):
    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the key.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
    )
    team = models.ForeignKey(  # PROTECT: deleting a team must not free its keys of its limits
        Group,
        null=True,
        blank=True,
        on_delete=models.PROTECT,
        related_name="llm_gateway_keys",
        help_text="The team whose limits and budgets this key counts against as well.",
    )
    created_at = models.DateTimeField(default=timezone.now, editable=False)
    updated_at = models.DateTimeField(auto_now=True, db_index=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True, editable=False)

    objects = ApiKeyQuerySet.as_manager()

    class Meta:
        verbose_name = "API key"
        ordering = ["name"]
        permissions = [
            (
                "manage_team_keys",
                "Can see, create and revoke the keys of each team they belong to (portal)",
            )
        ]

    def __str__(self) -> str:
        return f"{self.name} ({keys.display(self.prefix)})"

    @classmethod
    def create(
        cls,
        name: str,
        *,
        expires_at: dt.datetime | None = None,
        owner: Any = None,
        team: Group | None = None,
        **limits: Any,
    ) -> tuple[ApiKey, str]:
        """Create a key and return it with its raw value, which is never stored or shown again."""
        instance = cls(name=name, expires_at=expires_at, owner=owner, team=team, **limits)
        raw = instance.set_new_secret()
        instance.save()
        return instance, raw

    def set_new_secret(self) -> str:
        new = keys.generate()
        while ApiKey.objects.filter(prefix=new.prefix).exists():  # 32-bit prefix: rare
            new = keys.generate()
        self.prefix, self.digest = new.prefix, new.digest
        return new.raw

    def is_usable(self, now: dt.datetime | None = None) -> bool:
        return self.state_at(now or timezone.now()) == "active"

    @property
    def status(self) -> str:
        return self.state_at(timezone.now())

    def state_at(self, now: dt.datetime) -> str:
        revoked = self.revoked_at.timestamp() if self.revoked_at else None
        expires = self.expires_at.timestamp() if self.expires_at else None
        return keys.state(revoked, expires, now.timestamp())

    def revoke(self) -> None:
        if self.revoked_at is None:
            self.revoked_at = timezone.now()
            self.save(update_fields=["revoked_at", "updated_at"])

    def revoke_itself(self, client: str | None, request_id: str) -> None:
        """Revoked by whoever holds the key, through the usage API: the audit trail records
        the key as the actor, with the caller's address and the request id."""
        with audit.for_key(self.name, keys.display(self.prefix), client, request_id):
            self.revoke()

    # --- what the per-process key store reads (``keys.store.KeyRows``; in a worker thread)
    @classmethod
    def store_rows(cls, prefixes: list[str]) -> dict[str, dict[str, Any]]:
        close_old_connections()  # a dropped database connection is reopened, not reused
        owner_name = models.F("owner__" + get_user_model().USERNAME_FIELD)
        rows = cls.objects.filter(prefix__in=prefixes).values(
            *STORE_FIELDS, owner_name=owner_name, team_name=models.F("team__name")
        )
        return {row["prefix"]: row for row in rows}

    @classmethod
    def touch(cls, key_id: int, interval: float) -> None:
        # cache.add is atomic in a shared cache: one process in the fleet writes per interval.
        if cache.add(f"llm_gateway:last_used:{key_id}", 1, timeout=max(1, int(interval))):
            close_old_connections()
            cls.objects.filter(pk=key_id).update(last_used_at=timezone.now())


class UserLimits(LimitFields):
    """Limits on a user: all of the user's keys share them (each key's own apply as well)."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="llm_gateway_limits"
    )

    class Meta:
        verbose_name = "user limits"
        verbose_name_plural = "user limits"

    def __str__(self) -> str:
        return f"limits of {self.user}"


class TeamLimits(LimitFields):
    """Limits on a team (a Django group): every key of the team counts against them as well
    as against its own and its owner's."""

    group = models.OneToOneField(Group, on_delete=models.CASCADE, related_name="llm_gateway_limits")

    class Meta:
        verbose_name = "team limits"
        verbose_name_plural = "team limits"

    def __str__(self) -> str:
        return f"limits of team {self.group}"


class PortalPolicy(models.Model):
    """What a team's members may do in the self-service portal (``llm_gateway.portal``),
    within the site-wide ceilings of ``LLM_GATEWAY_PORTAL_*``; the team's allowed models
    (``TeamLimits``) bound a portal key's models."""

    group = models.OneToOneField(
        Group, on_delete=models.CASCADE, related_name="llm_gateway_portal_policy"
    )
    max_keys_per_user = models.PositiveIntegerField(
        "keys per member",
        null=True,
        blank=True,
        help_text="A member's usable keys of this team at most; empty: the site's.",
    )
    max_expiry_days = models.PositiveIntegerField(
        "longest expiry in days",
        null=True,
        blank=True,
        help_text="Empty: LLM_GATEWAY_PORTAL_MAX_EXPIRY_DAYS (never more than it).",
    )
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "portal policy"
        verbose_name_plural = "portal policies"

    def __str__(self) -> str:
        return f"portal policy of team {self.group}"


class ModelPrice(ExactDecimals):
    """Prices per million tokens for a model name or glob pattern (``llama-3-*``), in
    LLM_GATEWAY_CURRENCY; the most specific pattern that matches wins. ``version`` counts
    the row's changes: a request's log row names the version it was priced at."""

    pattern = models.CharField(max_length=200, unique=True, help_text="A model name or glob.")
    input = models.DecimalField("input per million", max_digits=14, decimal_places=6)
    cached_input = models.DecimalField(
        "cached input per million",
        max_digits=14,
        decimal_places=6,
        null=True,
        blank=True,
        help_text="Empty: the input price.",
    )
    output = models.DecimalField("output per million", max_digits=14, decimal_places=6)
    version = models.PositiveIntegerField(default=1, editable=False)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        verbose_name = "model price"
        ordering = ["pattern"]

    def __str__(self) -> str:
        return self.pattern

    def save(self, *args: Any, **kwargs: Any) -> None:
        if self.pk is not None:
            self.version = models.F("version") + 1
        super().save(*args, **kwargs)
        if self.pk is not None:
            self.refresh_from_db(fields=["version"])

    def as_price(self) -> Price:
        cached = self.cached_input if self.cached_input is not None else self.input
        return Price(
            self.pattern, Decimal(self.input), Decimal(cached), Decimal(self.output), self.version
        )

    @classmethod
    def book_rows(cls) -> list[Price]:
        """The whole price book (``pricing``: read in a worker thread, never per request)."""
        close_old_connections()
        return [row.as_price() for row in cls.objects.all()]


class RequestLog(models.Model):
    """One relayed request: who, what, how much, how fast, how it ended. No bodies (those go
    to the response log, off by default). Written in batches, off the request's path."""

    created_at = models.DateTimeField(db_index=True)
    request_id = models.CharField(max_length=128, db_index=True)
    key = models.ForeignKey(  # indexed with the time below: one index fewer to keep up
        ApiKey,
        null=True,
        blank=True,
        on_delete=models.SET_NULL,
        db_constraint=False,
        db_index=False,
    )
    key_name = models.CharField(max_length=100, blank=True)  # kept if the key is deleted
    model = models.CharField(max_length=200, blank=True)
    upstream = models.CharField(max_length=200, blank=True)
    method = models.CharField(max_length=10)
    path = models.CharField(max_length=300)
    status = models.PositiveSmallIntegerField()
    stream = models.BooleanField(default=False)
    prompt_tokens = models.IntegerField(null=True, blank=True)
    completion_tokens = models.IntegerField(null=True, blank=True)
    cached_tokens = models.IntegerField(null=True, blank=True)
    usage_source = models.CharField(max_length=10, blank=True)
    ttfb_ms = models.FloatField(null=True, blank=True)
    ttft_ms = models.FloatField(null=True, blank=True)
    duration_ms = models.FloatField(null=True, blank=True)
    ending = models.CharField(max_length=64)
    client = models.CharField(max_length=64, blank=True)
    tried = models.CharField(  # failover: the replicas that failed before ``upstream``
        max_length=500, blank=True, default=""
    )
    team = models.CharField(max_length=150, blank=True, default="")  # the key's, then
    owner = models.CharField(max_length=150, blank=True, default="")  # the key's, then
    cost = models.DecimalField(  # empty: the model has no price (unpriced)
        max_digits=18, decimal_places=6, null=True, blank=True
    )
    price_version = models.PositiveIntegerField(null=True, blank=True)
    priority = models.CharField(max_length=12, blank=True, default="")  # its class (scheduler)
    queued_ms = models.FloatField(null=True, blank=True)  # time waited in the gateway queue

    class Meta:
        verbose_name = "request"
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["key", "-created_at"], name="llm_gw_reqlog_key_time")]

    def __str__(self) -> str:
        return f"{self.request_id} {self.method} {self.path} {self.status}"


class UsageDaily(models.Model):
    """Per key, model and day: kept up to date as the request log is written, so that usage
    questions never scan the log."""

    key = models.ForeignKey(
        ApiKey, null=True, blank=True, on_delete=models.SET_NULL, db_constraint=False
    )
    key_name = models.CharField(max_length=100)
    model = models.CharField(max_length=200)
    day = models.DateField()
    requests = models.BigIntegerField(default=0)
    prompt_tokens = models.BigIntegerField(default=0)
    completion_tokens = models.BigIntegerField(default=0)
    cached_tokens = models.BigIntegerField(default=0)
    errors = models.BigIntegerField(default=0)
    team = models.CharField(max_length=150, blank=True, default="")  # the key's team then
    owner = models.CharField(max_length=150, blank=True, default="")  # the key's owner then
    cost = models.DecimalField(max_digits=20, decimal_places=6, default=Decimal(0))
    unpriced = models.BigIntegerField(default=0)  # requests whose model had no price

    class Meta:
        verbose_name = "daily usage"
        verbose_name_plural = "daily usage"
        constraints = [
            models.UniqueConstraint(fields=["key_name", "model", "day"], name="llm_gw_usage_day")
        ]
        indexes = [models.Index(fields=["day"], name="llm_gw_usage_day_idx")]


class ErrorDaily(models.Model):
    """Errors per code and day (``error:<code>`` endings), for the usage overview."""

    day = models.DateField()
    code = models.CharField(max_length=64)
    count = models.BigIntegerField(default=0)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["day", "code"], name="llm_gw_error_day")]
