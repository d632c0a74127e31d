"""Admin for API keys: the raw key is shown once, on the page that answers the add form."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.http import HttpRequest, HttpResponse
from django.template.response import TemplateResponse
from django.urls import reverse

from . import keys
from .models import ApiKey, ApiKeyQuerySet


class ApiKeyAddForm(forms.ModelForm):
    class Meta:
        model = ApiKey
        fields = ["name", "owner", "expires_at"]


@admin.register(ApiKey)
class ApiKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "display_prefix", "status", "created_at", "last_used_at", "expires_at"]
    list_filter = ["created_at", "expires_at", "revoked_at"]
    search_fields = ["name", "prefix"]
    readonly_fields = ["display_prefix", "digest", "created_at", "updated_at", "last_used_at"]
    fields = [
        "name",
        "display_prefix",
        "digest",
        "owner",
        "expires_at",
        "revoked_at",
        "created_at",
        "updated_at",
        "last_used_at",
    ]
    actions = ["revoke_keys"]

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
