"""What the audit trail records: the rows that decide who may use the engines and at what
price. Never a secret: a key's digest is left out (its raw value is never stored anywhere),
and the columns a relayed request writes (``last_used_at``) too, so that no relayed request
writes a record. Prices leave out ``version``: it is counted in the database (an F
expression the diff cannot read), and each change of a price is its own record anyway."""

from __future__ import annotations

from django.apps import apps

# model name: columns left out of the records
AUDITED: dict[str, tuple[str, ...]] = {
    "ApiKey": ("digest", "updated_at", "last_used_at"),
    "UserLimits": (),
    "TeamLimits": (),
    "ModelPrice": ("version", "updated_at"),
    "PortalPolicy": ("updated_at",),
}


def register() -> bool:
    """Register the audited models with django-auditlog (the app's ``ready``); False when
    ``auditlog`` is not installed (check llm_gateway.E009 says so)."""
    if not apps.is_installed("auditlog"):
        return False
    from auditlog.registry import auditlog

    for name, left_out in AUDITED.items():
        model = apps.get_model("llm_gateway", name)
        if not auditlog.contains(model):
            auditlog.register(model, exclude_fields=list(left_out))
    return True
