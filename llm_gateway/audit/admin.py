"""The audit trail in the admin: read-only for everyone, superusers included (no add,
change or delete), filterable by actor, how they came, action, object and date; and the
mixin that makes every change through the gateway's own admin pages name its user."""

from __future__ import annotations

from typing import Any

from django.contrib import admin
from django.http import HttpRequest, HttpResponse

from .actors import for_request
from .records import actor_of, changes_of, via_of, what_of


class AuditedAdmin(admin.ModelAdmin):
    """A ModelAdmin whose saves, deletions and actions are recorded as the request's user's
    (with the address and request id), the admin being one of the audited paths."""

    def changeform_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with for_request(request, "admin"):
            return super().changeform_view(request, *args, **kwargs)

    def changelist_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with for_request(request, "admin"):  # actions and list_editable save here
            return super().changelist_view(request, *args, **kwargs)

    def delete_view(self, request: HttpRequest, *args: Any, **kwargs: Any) -> HttpResponse:
        with for_request(request, "admin"):
            return super().delete_view(request, *args, **kwargs)


class ActorFilter(admin.SimpleListFilter):
    title = "actor"
    parameter_name = "actor"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        names = model_admin.get_queryset(request).values_list("additional_data__actor", flat=True)
        return [(name, name) for name in sorted({n for n in names.distinct() if n})]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(additional_data__actor=value) if value else queryset


class ViaFilter(admin.SimpleListFilter):
    title = "via"
    parameter_name = "via"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from .actors import VIA

        return [(via, via) for via in VIA]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        return queryset.filter(additional_data__via=value) if value else queryset


class ObjectTypeFilter(admin.SimpleListFilter):
    title = "object"
    parameter_name = "object_type"

    def lookups(self, request: HttpRequest, model_admin: Any) -> list[tuple[str, str]]:
        from .registry import AUDITED

        return [(name.lower(), name) for name in AUDITED]

    def queryset(self, request: HttpRequest, queryset: Any) -> Any:
        value = self.value()
        if not value:
            return queryset
        return queryset.filter(content_type__app_label="llm_gateway", content_type__model=value)


class AuditRecordAdmin(admin.ModelAdmin):
    date_hierarchy = "timestamp"
    list_display = ["timestamp", "actor", "via", "action", "object", "changes", "cid", "address"]
    list_filter = [ActorFilter, ViaFilter, "action", ObjectTypeFilter, "timestamp"]
    list_select_related = ["content_type", "actor"]
    search_fields = ["object_repr"]
    search_help_text = "An object's name (a key's, a team's, a price's pattern)."
    fields = ("timestamp", "actor", "via", "action", "object", "changes", "cid", "address")
    readonly_fields = fields
    ordering = ["-timestamp"]

    @admin.display(description="actor")
    def actor(self, entry: Any) -> str:
        return actor_of(entry)

    @admin.display(description="via")
    def via(self, entry: Any) -> str:
        return via_of(entry)

    @admin.display(description="object")
    def object(self, entry: Any) -> str:
        return what_of(entry)

    @admin.display(description="fields: from -> to")
    def changes(self, entry: Any) -> str:
        return changes_of(entry)

    @admin.display(description="request id")
    def cid(self, entry: Any) -> str:
        return entry.cid or "-"

    @admin.display(description="address")
    def address(self, entry: Any) -> str:
        return entry.remote_addr or "-"

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


def install(site: admin.AdminSite) -> None:
    """Register ``AuditRecordAdmin`` for django-auditlog's records in place of the library's
    own admin (which lets a deletion of an audited row cascade into its records). Its
    ``admin`` module is imported first, so whichever of the two apps Django's autodiscovery
    reaches first, the library's registration has happened and is replaced."""
    import auditlog.admin  # noqa: F401
    from auditlog.models import LogEntry

    if site.is_registered(LogEntry):
        site.unregister(LogEntry)
    site.register(LogEntry, AuditRecordAdmin)
