"""The audit trail, one test per path that changes a key, a limit, a price or a portal
policy (the admin, a command, the portal; the usage API's in
test_reporting_key_usage_e2e.py): who, what, which fields from what to what, from where and
under which request id; never a secret; and no one may edit or delete a record."""

from __future__ import annotations

import getpass
import io
import re

import pytest
from auditlog.models import LogEntry
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.test import Client
from django.urls import reverse

from llm_gateway import audit
from llm_gateway.models import ApiKey, ModelPrice, PortalPolicy, TeamLimits

pytestmark = pytest.mark.django_db
RAW = re.compile(r"sk-[0-9a-f]{8}-[A-Za-z0-9_\-]{43}")


def records(of: object, **filters: object) -> list[LogEntry]:
    return list(LogEntry.objects.get_for_object(of).filter(**filters).order_by("id"))


def no_secret_anywhere(*raws: str) -> None:
    """No record holds a raw key, a key's secret part or a digest."""
    digests = list(ApiKey.objects.values_list("digest", flat=True))
    for entry in LogEntry.objects.all():
        parts = (entry.changes, entry.object_repr, entry.additional_data, entry.serialized_data)
        text = " ".join(str(part) for part in parts)
        assert not RAW.search(text), text
        assert not any(raw.split("-", 2)[2] in text for raw in raws), text
        assert not any(digest in text for digest in digests), text
        assert "digest" not in (entry.changes_dict or {})


def test_the_admin_records_its_user_address_and_request_id(admin_client, admin_user):
    team = Group.objects.create(name="search")
    limits = TeamLimits.objects.create(group=team)
    response = admin_client.post(
        reverse("admin:llm_gateway_teamlimits_change", args=[limits.pk]),
        {"group": team.pk, "rpm": "60", "budget_period": "month", "cost_budget": "500"},
        HTTP_X_REQUEST_ID="admin-change-1",
    )
    assert response.status_code == 302, response.content[:3000]
    (record,) = records(limits, action=LogEntry.Action.UPDATE)
    assert record.actor == admin_user and audit.actor_of(record) == admin_user.username
    assert audit.via_of(record) == "admin"
    assert record.remote_addr == "127.0.0.1" and record.cid == "admin-change-1"
    assert set(record.changes_dict) == {"rpm", "budget_period", "cost_budget"}
    assert "rpm: - -> 60" in audit.line(record) and "budget_period: day -> month" in audit.line(
        record
    )

    # A key added, then revoked by the admin's action: two records, both the admin's.
    response = admin_client.post(
        reverse("admin:llm_gateway_apikey_add"),
        {"name": "from-admin", "team": team.pk, "expires_at_0": "", "expires_at_1": ""},
    )
    raw = RAW.search(response.content.decode()).group(0)
    key = ApiKey.objects.get(name="from-admin")
    admin_client.post(
        reverse("admin:llm_gateway_apikey_changelist"),
        {"action": "revoke_keys", "_selected_action": [key.pk]},
    )
    created, revoked = records(key)
    assert created.action == LogEntry.Action.CREATE and revoked.action == LogEntry.Action.UPDATE
    assert {audit.actor_of(created), audit.actor_of(revoked)} == {admin_user.username}
    assert "team: - -> search" in audit.changes_of(created)
    assert "name: - -> from-admin" in audit.changes_of(created)
    assert set(revoked.changes_dict) == {"revoked_at"}
    no_secret_anywhere(raw)


def test_commands_record_their_name_and_os_user():
    team = Group.objects.create(name="ml-research")
    call_command("set_team_limits", "ml-research", "--cost-budget", "500", "--rpm", "40")
    call_command("set_model_price", "llama-3-*", "--input", "0.15", "--output", "0.60")
    call_command("set_model_price", "llama-3-*", "--input", "0.20", "--output", "0.60")
    call_command("set_portal_policy", "ml-research", "--max-keys", "3", stdout=io.StringIO())
    out = io.StringIO()
    call_command("create_api_key", "batch", "--team", "ml-research", "--rpm", "10", stdout=out)
    raw = out.getvalue().strip().splitlines()[-1]
    call_command("revoke_api_key", "batch", stdout=io.StringIO())
    actor = f"os user {getpass.getuser()})"
    every = list(LogEntry.objects.order_by("id"))
    assert [audit.actor_of(e).split(" (")[0] for e in every] == [
        "command set_team_limits",  # the limits row, created
        "command set_team_limits",  # ... then its limits set
        "command set_model_price",
        "command set_model_price",
        "command set_portal_policy",
        "command set_portal_policy",
        "command create_api_key",
        "command revoke_api_key",
    ]
    assert all(audit.actor_of(e).endswith(actor) and audit.via_of(e) == "command" for e in every)
    price = ModelPrice.objects.get()
    (changed,) = records(price, action=LogEntry.Action.UPDATE)
    assert audit.changes_of(changed) == "input: 0.150000 -> 0.200000"
    limits = TeamLimits.objects.get(group=team)
    updated = records(limits, action=LogEntry.Action.UPDATE)[-1]
    assert "cost_budget: - -> 500" in audit.changes_of(updated)
    assert "rpm: - -> 40" in audit.changes_of(updated)
    policy = PortalPolicy.objects.get()
    assert "max_keys_per_user: - -> 3" in audit.changes_of(records(policy)[-1])
    no_secret_anywhere(raw)


def test_the_portal_records_the_person_who_made_and_revoked_a_key():
    team = Group.objects.create(name="search")
    alice = User.objects.create_user("alice")
    alice.groups.add(team)
    client = Client(HTTP_HOST="127.0.0.1", HTTP_X_REQUEST_ID="portal-1")
    client.force_login(alice)
    page = client.post(
        "/gateway/keys/new", {"name": "ci", "team": "search", "expires_in_days": "7"}
    ).content.decode()
    raw = RAW.search(page).group(0)
    key = ApiKey.objects.get(name="alice/ci")
    client.post(f"/gateway/keys/{key.pk}/revoke", HTTP_X_REQUEST_ID="portal-2")
    created, revoked = records(key)
    for record, request_id in ((created, "portal-1"), (revoked, "portal-2")):
        assert record.actor == alice and audit.via_of(record) == "portal"
        assert record.cid == request_id and record.remote_addr == "127.0.0.1"
    assert "owner: - -> alice" in audit.changes_of(created)
    assert "expires_at: - -> " in audit.changes_of(created)
    no_secret_anywhere(raw)


def test_nobody_may_add_change_or_delete_a_record(admin_client):
    call_command("create_api_key", "k", stdout=io.StringIO())
    record = LogEntry.objects.get()
    changelist = reverse("admin:auditlog_logentry_changelist")
    page = admin_client.get(changelist)
    assert page.status_code == 200 and "command create_api_key" in page.content.decode()
    change = reverse("admin:auditlog_logentry_change", args=[record.pk])
    shown = admin_client.get(change)  # a superuser sees the record, read-only
    assert shown.status_code == 200 and 'name="_save"' not in shown.content.decode()
    assert admin_client.post(change, {"action": "2"}).status_code == 403
    delete = reverse("admin:auditlog_logentry_delete", args=[record.pk])
    assert admin_client.get(delete).status_code == 403
    assert admin_client.post(delete, {"post": "yes"}).status_code == 403
    assert admin_client.get(reverse("admin:auditlog_logentry_add")).status_code == 403
    bulk = admin_client.post(
        changelist, {"action": "delete_selected", "_selected_action": [record.pk], "post": "yes"}
    )
    assert bulk.status_code in (200, 302)
    assert LogEntry.objects.filter(pk=record.pk).exists()  # no action deletes one
    filtered = admin_client.get(changelist + "?via=command&object_type=apikey&q=k")
    assert filtered.status_code == 200 and "create_api_key" in filtered.content.decode()
    listed = admin_client.get(changelist + "?via=portal").content.decode()
    assert "0 audit" in listed or 'id="result_list"' not in listed


def test_audit_log_prints_one_line_a_record_since_a_day_and_by_object():
    call_command("create_api_key", "alpha", stdout=io.StringIO())
    call_command("create_api_key", "beta", stdout=io.StringIO())
    call_command("set_api_key_limits", "alpha", "--rpm", "5", stdout=io.StringIO())
    out = io.StringIO()
    call_command("audit_log", "--object", "alpha", stdout=out)
    lines = out.getvalue().splitlines()
    assert len(lines) == 2
    created, changed = (line.split("  ") for line in lines)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", created[0])
    assert created[1].startswith("command create_api_key (os user ") and created[1].endswith(
        "(command)"
    )
    assert created[2] == "create" and created[3].startswith("API key alpha (sk-")
    assert changed[2] == "update" and changed[4] == "rpm: - -> 5"
    every = io.StringIO()
    call_command("audit_log", "--since", "2000-01-01", stdout=every)
    assert len(every.getvalue().splitlines()) == 3
    later = io.StringIO()
    call_command("audit_log", "--since", "2999-01-01", stdout=later)
    assert later.getvalue() == ""


@pytest.mark.django_db(transaction=True)  # ApiKey.touch closes old connections
def test_a_relayed_request_writes_no_record():
    """The columns a request writes (last_used_at through ``ApiKey.touch``) are not audited."""
    key, _ = ApiKey.create("busy")
    before = LogEntry.objects.count()
    ApiKey.touch(key.pk, interval=0.001)
    key.refresh_from_db()
    assert key.last_used_at is not None and LogEntry.objects.count() == before
