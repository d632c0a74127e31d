"""The API key model: a digest, a display prefix, and the dates that make a key usable."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.conf import settings
from django.db import models
from django.utils import timezone

from . import keys


class ApiKeyQuerySet(models.QuerySet["ApiKey"]):
    def revoke(self) -> int:
        """Revoke every key in the set that is not revoked yet; returns how many."""
        now = timezone.now()
        return self.filter(revoked_at__isnull=True).update(revoked_at=now, updated_at=now)


class ApiKey(models.Model):
    name = models.CharField(max_length=100, unique=True)
    prefix = models.CharField(max_length=16, unique=True, editable=False)
    digest = models.CharField(max_length=64, editable=False, help_text="SHA-256 of the key.")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL
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

    def __str__(self) -> str:
        return f"{self.name} ({keys.display(self.prefix)})"

    @classmethod
    def create(
        cls, name: str, *, expires_at: dt.datetime | None = None, owner: Any = None
    ) -> tuple[ApiKey, str]:
        """Create a key and return it with its raw value, which is never stored or shown again."""
        instance = cls(name=name, expires_at=expires_at, owner=owner)
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
