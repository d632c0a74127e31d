"""A record as people read it: one line each (``manage.py audit_log``), and its parts for
the admin's list."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.exceptions import FieldDoesNotExist


def actor_of(entry: Any) -> str:
    """The actor's name: a user, ``command NAME (os user U)`` or ``key NAME (sk-…)``;
    ``-`` for a change made outside every audited path (a shell, a script)."""
    data = entry.additional_data or {}
    if data.get("actor"):
        return str(data["actor"])
    return entry.actor.get_username() if entry.actor is not None else "-"


def via_of(entry: Any) -> str:
    return str((entry.additional_data or {}).get("via") or "-")


def _shown(model: Any, field: str, value: Any) -> str:
    """A value as stored by auditlog (a string), a related row by its name, not its id."""
    if value in (None, "None", ""):
        return "-"
    try:
        column = model._meta.get_field(field) if model is not None else None
    except FieldDoesNotExist:
        column = None
    if column is not None and column.is_relation and column.related_model is not None:
        related = column.related_model._default_manager.filter(pk=value).first()
        return str(related) if related is not None else f"#{value} (deleted)"
    return str(value)


def changes_of(entry: Any) -> str:
    """``field: from -> to`` for each field that changed (its column name), ``; ``-separated
    (a new row's empty fields left out)."""
    model = entry.content_type.model_class()
    parts = []
    for field, values in sorted((entry.changes_dict or {}).items()):
        if not (isinstance(values, list | tuple) and len(values) == 2):
            continue
        before, after = (_shown(model, field, value) for value in values)
        if before != after:
            parts.append(f"{field}: {before} -> {after}")
    return "; ".join(parts)


def what_of(entry: Any) -> str:
    """The object: its kind and its name as it was then (``API key ci (sk-1a2b3c4d-…)``)."""
    kind = entry.content_type.model_class()
    name = kind._meta.verbose_name if kind is not None else entry.content_type.model
    return f"{name} {entry.object_repr}"


def line(entry: Any) -> str:
    """time (UTC), actor (via), action, object, changes."""
    parts = [
        entry.timestamp.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        f"{actor_of(entry)} ({via_of(entry)})",
        entry.get_action_display(),
        what_of(entry),
        changes_of(entry),
    ]
    return "  ".join(part for part in parts if part)
