"""The portal's pages: plain Django views and templates, CSRF on every form, nothing a
page shows is another team's or a secret (the one exception: a new key, on the page that
answers its form, once). Off the relay's path: these run in the project's Django, never in
the gateway's fast face."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from functools import wraps
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import NoReverseMatch, reverse
from django.utils.safestring import mark_safe
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_http_methods, require_POST

from .. import audit, keys
from ..conf import conf
from ..models import ApiKey
from ..reporting import charts, levels
from ..reporting import queries as reports
from .forms import NewKeyForm
from .policy import Portal

View = Callable[..., HttpResponse]


def portal_page(view: View) -> View:
    """Logged in (else the project's login page), the portal on (else 404), never cached."""

    @wraps(view)
    def page(request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        if not conf.PORTAL:
            raise Http404("The portal is off.")
        return view(request, Portal(request.user), *args, **kwargs)

    return login_required(never_cache(page))


def api_base(request: HttpRequest) -> str:
    """Where clients send requests: LLM_GATEWAY_PORTAL_API_URL, else this site and the
    relay's prefix (the Django face's if it is included, else the fast face's)."""
    if conf.PORTAL_API_URL:
        return conf.PORTAL_API_URL
    try:
        path = reverse("llm_gateway:relay", kwargs={"sub_path": ""}).rstrip("/")
    except NoReverseMatch:
        path = conf.RELAY_PREFIX or "/v1"
    return request.build_absolute_uri(path)


def _key_row(key: ApiKey) -> dict[str, Any]:
    return {"key": key, "shown": keys.display(key.prefix), "spent": levels.key_level(key)}


@portal_page
def key_list(request: HttpRequest, portal: Portal) -> HttpResponse:
    visible = portal.visible_keys().order_by("team__name", "name")
    mine = [_key_row(k) for k in visible if k.owner_id == request.user.pk]
    managed: dict[str, list[dict[str, Any]]] = {t.name: [] for t in portal.managed}
    for key in visible:
        if key.owner_id != request.user.pk and key.team is not None:
            managed.setdefault(key.team.name, []).append(_key_row(key))
    teams = [levels.team_level(team) for team in portal.teams]
    context = {"mine": mine, "managed": managed, "teams": teams, "currency": conf.CURRENCY}
    return render(request, "llm_gateway/portal/keys.html", context)


@portal_page
@require_http_methods(["GET", "POST"])
def key_new(request: HttpRequest, portal: Portal) -> HttpResponse:
    if not portal.teams:
        return render(request, "llm_gateway/portal/no_team.html", status=403)
    form = NewKeyForm(request.POST or None, portal=portal)
    if request.method == "POST" and form.is_valid():
        with audit.for_request(request, "portal"):
            key, raw = form.create()
        context = {"key": key, "shown": keys.display(key.prefix), "raw_key": raw}
        context["api_base"] = api_base(request)
        context["model"] = next(iter(key.allowed_models.split(",")), "") or "MODEL"
        return render(request, "llm_gateway/portal/key_created.html", context)
    rules = [portal.rules(t) for t in portal.teams]
    return render(request, "llm_gateway/portal/key_new.html", {"form": form, "rules": rules})


@portal_page
def key_detail(request: HttpRequest, portal: Portal, pk: int) -> HttpResponse:
    key = portal.key(pk)
    days = reports.daily(key.name)
    since = reports.today() - dt.timedelta(days=29)
    context = {
        "key": key,
        "shown": keys.display(key.prefix),
        "levels": levels.key_levels(key),
        "may_revoke": portal.may_revoke(key) and key.status == "active",
        "tokens_chart": _chart(days, "tokens", "Tokens per day"),
        "per_model": reports.by_model(since, key=key.name),
        "currency": conf.CURRENCY,
    }
    return render(request, "llm_gateway/portal/key_detail.html", context)


@portal_page
@require_POST
def key_revoke(request: HttpRequest, portal: Portal, pk: int) -> HttpResponse:
    key = portal.key(pk)
    if not portal.may_revoke(key):
        raise Http404("No such key of yours.")
    with audit.for_request(request, "portal"):
        key.revoke()
    messages.success(request, f"Revoked {key.name}: every gateway refuses it within a second.")
    return HttpResponseRedirect(reverse("llm_gateway_portal:key", args=[key.pk]))


@portal_page
def usage(request: HttpRequest, portal: Portal) -> HttpResponse:
    """30 days of tokens and cost per day, and per model: mine (as owner), or a team's."""
    team_name = request.GET.get("team") or None
    team = portal.team_named(team_name) if team_name is not None else None
    team_of = team.name if team is not None else None
    owner = None if team is not None else request.user.get_username()
    days = reports.daily(team=team_of, owner=owner)
    since = reports.today() - dt.timedelta(days=29)
    context = {
        "team": team,
        "teams": portal.teams,
        "tokens_chart": _chart(days, "tokens", "Tokens per day"),
        "cost_chart": _chart(days, "cost", f"Cost per day, {conf.CURRENCY}"),
        "per_model": reports.by_model(since, team=team_of, owner=owner),
        "currency": conf.CURRENCY,
    }
    return render(request, "llm_gateway/portal/usage.html", context)


def _chart(days: list[dict[str, Any]], field: str, title: str) -> str:
    shown = "{:,.2f}".format if field == "cost" else "{:,}".format
    svg = charts.bars(
        [d[field] for d in days], [d["day"].strftime("%b %d") for d in days], title, shown=shown
    )
    return mark_safe(svg)  # built by charts.bars, every text in it escaped
