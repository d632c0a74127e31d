"""Admin for API keys (the raw key is shown once, on the page that answers the add form),
their usage, user and team limits, the price book, the portal's team policies, the request
log (read-only; its filters never scan the log), and the audit trail (read-only): every
change made on these pages is recorded as its user's."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from django import forms
from django.apps import apps
from django.contrib import admin, messages
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.db import connection
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import path, reverse
from django.utils.functional import cached_property
from django.utils.safestring import mark_safe

from . import keys
from .audit.admin import AuditedAdmin
from .conf import conf
from .models import (
    ApiKey,
    ApiKeyQuerySet,
    ErrorDaily,
    ModelPrice,
    PortalPolicy,
    RequestLog,
    TeamLimits,
    UsageDaily,
    UserLimits,
)
from .reporting import charts
from .reporting import queries as reports

LIMIT_FIELDS = [
    "allowed_models",
    "rpm",
    "tpm",
    "max_parallel",
    "token_budget",
    "cost_budget",
    "budget_period",
    "priority",  # the scheduler's: class, highest class, fair share
    "max_priority",
    "share",
]


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "owner", "team", "expires_at", *LIMIT_FIELDS]


@admin.register(ApiKey)
class ApiKeyAdmin(AuditedAdmin):
    list_display = [
        "name",
        "display_prefix",
        "status",
        "team",
        "limits",
        "created_at",
        "last_used_at",
        "expires_at",
    ]
    list_filter = ["team", "created_at", "expires_at", "revoked_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["display_prefix", "digest", "created_at", "updated_at", "last_used_at"]
    fields = [
        "name",
        "display_prefix",
        "digest",
        "owner",
        "team",
        "expires_at",
        "revoked_at",
        *LIMIT_FIELDS,
        "created_at",
        "updated_at",
        "last_used_at",
    ]
    actions = ["revoke_keys"]

    @admin.display(description="limits")
    def limits(self, obj: ApiKey) -> str:
        return obj.limits_summary()

    @admin.display(description="key", ordering="prefix")
    def display_prefix(self, obj: ApiKey) -> str:
        return keys.display(obj.prefix)

    @admin.display(description="status")
    def status(self, obj: ApiKey) -> str:
        return obj.status

    @admin.action(description="Revoke selected API keys")
    def revoke_keys(self, request: HttpRequest, queryset: ApiKeyQuerySet) -> None:
        count = queryset.revoke()
        self.message_user(request, f"Revoked {count} key(s).", messages.SUCCESS)

    def get_form(
        self, request: HttpRequest, obj: Any = None, change: bool = False, **kwargs: Any
    ) -> Any:
        if obj is None:  # a separate add form, as contrib.auth's UserAdmin has
            kwargs["form"] = ApiKeyAddForm
            kwargs["fields"] = ApiKeyAddForm.Meta.fields
        return super().get_form(request, obj, change=change, **kwargs)

    def change_view(
        self,
        request: HttpRequest,
        object_id: str,
        form_url: str = "",
        extra_context: dict[str, Any] | None = None,
    ) -> HttpResponse:
        key = self.get_object(request, object_id)
        extra = {**(extra_context or {}), **(UsageOnKeyPage.context(key) if key else {})}
        return super().change_view(request, object_id, form_url, extra)

    def get_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return ApiKeyAddForm.Meta.fields if obj is None else self.fields

    def get_readonly_fields(self, request: HttpRequest, obj: Any = None) -> Any:
        return [] if obj is None else self.readonly_fields

    def save_model(self, request: HttpRequest, obj: ApiKey, form: Any, change: bool) -> None:
        if not change:
            obj._raw_key = obj.set_new_secret()  # type: ignore[attr-defined]
        super().save_model(request, obj, form, change)

    def response_add(
        self, request: HttpRequest, obj: ApiKey, post_url_continue: Any = None
    ) -> HttpResponse:
        raw = getattr(obj, "_raw_key", None)
        if raw is None or "_popup" in request.POST:
            return super().response_add(request, obj, post_url_continue)
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "API key created",
            "api_key": obj,
            "raw_key": raw,
            "changelist_url": reverse("admin:llm_gateway_apikey_changelist"),
            "change_url": reverse("admin:llm_gateway_apikey_change", args=[obj.pk]),
        }
        response = TemplateResponse(request, "admin/llm_gateway/apikey/created.html", context)
        response["Cache-Control"] = "no-store"  # the only page that ever holds the key
        return response


@admin.register(UserLimits)
class UserLimitsAdmin(AuditedAdmin):
    """Limits shared by all of a user's keys (each key's own limits apply as well)."""

    list_display = ["user", "summary"]
    search_fields = ["user__username"]
    fields = ["user", *LIMIT_FIELDS]
    raw_id_fields = ["user"]

    @admin.display(description="limits")
    def summary(self, obj: UserLimits) -> str:
        return obj.limits_summary()


@admin.register(TeamLimits)
class TeamLimitsAdmin(AuditedAdmin):
    """A team is a Django group: its limits and budgets, members, keys and this month's spend."""

    list_display = ["group", "summary", "members", "spend_this_month"]
    search_fields = ["group__name"]
    fields = ["group", *LIMIT_FIELDS, "members", "keys_of_team", "spend_this_month"]
    readonly_fields = ["members", "keys_of_team", "spend_this_month"]

    @admin.display(description="limits")
    def summary(self, obj: TeamLimits) -> str:
        return obj.limits_summary()

    @admin.display(description="members")
    def members(self, obj: TeamLimits) -> str:
        names = [user.get_username() for user in obj.group.user_set.all()[:20]]
        return ", ".join(names) or "-"

    @admin.display(description="spend this month")
    def spend_this_month(self, obj: TeamLimits) -> str:
        return reports.team_spend(obj.group.name)

    @admin.display(description="keys")
    def keys_of_team(self, obj: TeamLimits) -> str:
        found = ApiKey.objects.filter(team=obj.group).order_by("name")[:100]
        return ", ".join(f"{key.name} ({keys.display(key.prefix)})" for key in found) or "-"


@admin.register(ModelPrice)
class ModelPriceAdmin(AuditedAdmin):
    """The price book: per million tokens, in LLM_GATEWAY_CURRENCY; the most specific
    pattern that matches a model wins. Applied by every process within 5 seconds."""

    list_display = ["pattern", "input", "cached_input", "output", "version", "updated_at"]
    search_fields = ["pattern"]
    readonly_fields = ["version", "updated_at"]


@admin.register(PortalPolicy)
class PortalPolicyAdmin(AuditedAdmin):
    """What a team's members may do in the self-service portal, within the site's ceilings
    (LLM_GATEWAY_PORTAL_MAX_KEYS_PER_USER, LLM_GATEWAY_PORTAL_MAX_EXPIRY_DAYS)."""

    list_display = ["group", "max_keys_per_user", "max_expiry_days", "updated_at"]
    search_fields = ["group__name"]
    fields = ["group", "max_keys_per_user", "max_expiry_days"]


if apps.is_installed("auditlog"):  # else check llm_gateway.E009 says so
    from .audit.admin import install

    install(admin.site)


class UsageOnKeyPage:
    """The key's change page: tokens and requests per day (30 days), totals per model."""

    @staticmethod
    def context(key: ApiKey) -> dict[str, Any]:
        days = reports.daily(key.name)
        labels = [d["day"].strftime("%m-%d") for d in days]
        since = reports.today() - dt.timedelta(days=29)
        return {
            "usage_tokens_chart": mark_safe(
                charts.bars([d["tokens"] for d in days], labels, "Tokens per day")
            ),
            "usage_requests_chart": mark_safe(
                charts.bars([d["requests"] for d in days], labels, "Requests per day", "#79aec8")
            ),
            "usage_per_model": reports.by_key_and_model(key.name, since),
        }


class ChoicesFilter(admin.SimpleListFilter):
    """A filter whose choices come from a small table, never from DISTINCT over the log."""

    field = ""

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(**{self.field: value}) if value else queryset


class ModelFilter(ChoicesFilter):
    title = parameter_name = field = "model"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        names = UsageDaily.objects.values_list("model", flat=True).distinct().order_by("model")
        return [(name, name or "-") for name in names]


class KeyFilter(admin.SimpleListFilter):
    """By key id (the log's index is on key and time); keys not in the database (static
    keys, deleted ones) by name."""

    title = "key"
    parameter_name = "key"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        used = UsageDaily.objects.values_list("key_id", "key_name").distinct()
        return sorted(
            {(str(key_id) if key_id else f"name:{name}", name or "-") for key_id, name in used},
            key=lambda item: item[1],
        )

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        if not value:
            return queryset
        if value.startswith("name:"):
            return queryset.filter(key__isnull=True, key_name=value[5:])
        return queryset.filter(key_id=value) if value.isdigit() else queryset.none()


class StatusFilter(ChoicesFilter):
    title = parameter_name = field = "status"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        return [(s, s) for s in ("200", "400", "401", "404", "413", "429", "502", "503", "504")]


class EndingFilter(ChoicesFilter):
    title = parameter_name = field = "ending"

    def lookups(self, request: HttpRequest, model_admin: Any) -> Any:
        codes = ErrorDaily.objects.values_list("code", flat=True).distinct().order_by("code")
        fixed = ["done", "client_disconnected", "upstream_closed"]
        return [(e, e) for e in fixed] + [(f"error:{c}", f"error:{c}") for c in codes]


class EstimatedCountPaginator(Paginator):
    """On PostgreSQL, a list the planner expects to be long is counted by its estimate, not
    by COUNT(*) over millions of rows (the page then says "about"); short ones exactly."""

    ESTIMATE_ABOVE = 10_000

    @cached_property
    def count(self) -> int:
        queryset = self.object_list
        if connection.vendor == "postgresql" and hasattr(queryset, "query"):
            sql, params = queryset.query.sql_with_params()
            with connection.cursor() as cursor:
                cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
                plan = cursor.fetchone()[0]
            plan = plan if isinstance(plan, list) else json.loads(plan)
            estimate = int(plan[0]["Plan"]["Plan Rows"])
            if estimate > self.ESTIMATE_ABOVE:
                return estimate
        return super().count


@admin.register(RequestLog)
class RequestLogAdmin(admin.ModelAdmin):
    list_display = [
        "created_at",
        "request_id",
        "key_name",
        "model",
        "status",
        "stream",
        "prompt_tokens",
        "completion_tokens",
        "usage_source",
        "cost",
        "team",
        "owner",
        "priority",
        "queued_ms",
        "ttft_ms",
        "duration_ms",
        "ending",
    ]
    list_filter = [KeyFilter, ModelFilter, StatusFilter, EndingFilter, "created_at"]
    search_fields = ["request_id"]
    search_help_text = "A request id (exact)."
    date_hierarchy = None
    show_full_result_count = False
    paginator = EstimatedCountPaginator
    list_per_page = 100
    ordering = ["-created_at"]

    def get_search_results(
        self, request: HttpRequest, queryset: Any, search_term: str
    ) -> tuple[Any, bool]:
        """An exact request id: the index answers it (the admin's own search is
        case-insensitive, which no index serves)."""
        term = search_term.strip()
        return (queryset.filter(request_id=term) if term else queryset), False

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False  # retention is manage.py prune_request_log

    def get_urls(self) -> list[Any]:
        overview = path(
            "usage/",
            self.admin_site.admin_view(self.usage_view),
            name="llm_gateway_usage_overview",
        )
        return [overview, *super().get_urls()]

    def usage_view(self, request: HttpRequest) -> HttpResponse:
        """Cost per day and per team, the top keys and models by cost and by tokens, and
        errors by code, over 30 days; ``?team=NAME`` narrows the chart and the tops."""
        if not self.has_view_permission(request):
            raise PermissionDenied
        since = reports.today() - dt.timedelta(days=29)
        team = request.GET.get("team") or None
        days = reports.daily(team=team)
        currency = conf.CURRENCY
        chart = charts.bars(
            [d["cost"] for d in days],
            [d["day"].strftime("%b %d") for d in days],
            f"Cost per day, {currency}" + (f", team {team}" if team else ""),
            shown="{:,.2f}".format,
        )
        context = {
            **self.admin_site.each_context(request),
            "opts": self.opts,
            "title": "Usage, last 30 days",
            "since": since,
            "team": team,
            "currency": currency,
            "cost_chart": mark_safe(chart),  # built here, every text in it escaped
            "teams": reports.grouped("team", since),
            "top_keys_by_cost": reports.top("key_name", since, by="cost", team=team),
            "top_models_by_cost": reports.top("model", since, by="cost", team=team),
            "top_keys": reports.top("key_name", since, team=team),
            "top_models": reports.top("model", since, team=team),
            "errors": reports.errors_by_code(since),
        }
        return TemplateResponse(request, "admin/llm_gateway/usage_overview.html", context)
