import datetime as dt

import pytest
from django.db import IntegrityError
from django.utils import timezone

from llm_gateway import keys
from llm_gateway.models import ApiKey

pytestmark = pytest.mark.django_db


def test_create_stores_prefix_and_digest_only():
    key, raw = ApiKey.create("alpha")
    key.refresh_from_db()
    assert key.prefix == keys.prefix_of(raw)
    assert key.digest == keys.digest(raw)
    assert raw not in {getattr(key, f.attname) for f in ApiKey._meta.concrete_fields}
    assert key.status == "active" and key.is_usable()


def test_names_are_unique():
    ApiKey.create("same")
    with pytest.raises(IntegrityError):
        ApiKey.create("same")


def test_expiry_and_revocation_change_status():
    past = timezone.now() - dt.timedelta(seconds=1)
    expired, _ = ApiKey.create("expired", expires_at=past)
    assert expired.status == "expired" and not expired.is_usable()
    key, _ = ApiKey.create("to-revoke", expires_at=timezone.now() + dt.timedelta(days=1))
    assert key.status == "active"
    key.revoke()
    key.refresh_from_db()
    assert key.status == "revoked" and key.revoked_at is not None and not key.is_usable()


def test_queryset_revoke_counts_only_active_ones_and_bumps_updated_at():
    a, _ = ApiKey.create("a")
    b, _ = ApiKey.create("b")
    b.revoke()
    before = ApiKey.objects.get(pk=a.pk).updated_at
    assert ApiKey.objects.all().revoke() == 1
    a.refresh_from_db()
    assert a.status == "revoked" and a.updated_at > before


def test_migration_0006_gives_the_rollups_written_before_it_their_keys_owners():
    import importlib

    from django.apps import apps
    from django.contrib.auth.models import User

    from llm_gateway.models import UsageDaily

    migration = importlib.import_module("llm_gateway.migrations.0006_owner_in_the_log")
    ann = User.objects.create(username="ann")
    owned, _ = ApiKey.create("owned", owner=ann)
    ownerless, _ = ApiKey.create("ownerless")
    today = dt.date.today()
    for key in (owned, ownerless):
        UsageDaily.objects.create(key=key, key_name=key.name, model="m", day=today)
    UsageDaily.objects.create(key=None, key_name="deleted", model="m", day=today)
    migration.owners_of_the_rollups(apps, None)
    owners = dict(UsageDaily.objects.values_list("key_name", "owner"))
    assert owners == {"owned": "ann", "ownerless": "", "deleted": ""}
