"""The request log writer's database side: rows, rollups, retention, the admin's pages."""

from __future__ import annotations

import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from llm_gateway.core import Principal
from llm_gateway.core.record import RequestRecord
from llm_gateway.models import ApiKey, ErrorDaily, RequestLog, UsageDaily
from llm_gateway.observe.request_log import row_of, write_rows

pytestmark = pytest.mark.django_db


def record(key: ApiKey | None, request_id: str, **fields: object) -> RequestRecord:
    principal = Principal(key.pk, key.name, key.prefix) if key else Principal(None, "static", "")
    values: dict[str, object] = {
        "model": "m1",
        "status": 200,
        "ending": "done",
        "prompt_tokens": 10,
        "completion_tokens": 5,
        "usage_source": "engine",
        "duration": 0.25,
    }
    values.update(fields)
    rec = RequestRecord(request_id, "POST", "/chat/completions", principal, "10.0.0.1")
    for name, value in values.items():
        setattr(rec, name, value)
    return rec


def test_rows_and_rollups_are_written_together():
    key, _ = ApiKey.create("reporting")
    rows = [row_of(record(key, f"r{i}")) for i in range(3)]
    rows.append(row_of(record(key, "r-err", ending="error:upstream_timeout", status=504)))
    rows.append(row_of(record(None, "r-static", model="m2")))
    write_rows(rows)
    write_rows([row_of(record(key, "r-again"))])  # adds to the same day's rollup
    assert RequestLog.objects.count() == 6
    row = RequestLog.objects.get(request_id="r1")
    assert (row.key_id, row.key_name, row.duration_ms, row.client) == (
        key.pk,
        "reporting",
        250.0,
        "10.0.0.1",
    )
    usage = UsageDaily.objects.get(key_name="reporting", model="m1")
    assert (usage.requests, usage.prompt_tokens, usage.completion_tokens, usage.errors) == (
        5,
        50,
        25,
        1,
    )
    assert UsageDaily.objects.get(key_name="static").key_id is None
    assert ErrorDaily.objects.get(code="upstream_timeout").count == 1


def test_prune_deletes_old_rows_in_batches_and_keeps_the_rollups():
    key, _ = ApiKey.create("old")
    days_ago = lambda n: (timezone.now() - dt.timedelta(days=n)).timestamp()  # noqa: E731
    old = row_of(record(key, "old", created=days_ago(40)))
    write_rows([old, *[row_of(record(key, f"new{i}")) for i in range(3)]])
    write_rows([row_of(record(key, f"old{i}", created=days_ago(31))) for i in range(5)])
    out = io.StringIO()
    call_command("prune_request_log", "--older-than", "30d", "--batch-size", "2", stdout=out)
    assert "Deleted 6 request log rows" in out.getvalue() and "in 3 batch(es)" in out.getvalue()
    assert sorted(RequestLog.objects.values_list("request_id", flat=True)) == [
        "new0",
        "new1",
        "new2",
    ]
    assert UsageDaily.objects.filter(key_name="old").count() == 3  # three days, all kept
    with pytest.raises(Exception, match="30d, 12h or 90m"):
        call_command("prune_request_log", "--older-than", "a month")


def test_admin_pages_render_usage(admin_client):
    key, _ = ApiKey.create("charted")
    write_rows([row_of(record(key, f"a{i}")) for i in range(4)])
    write_rows([row_of(record(key, "a-err", ending="error:upstream_error", status=502))])
    page = admin_client.get(f"/admin/llm_gateway/apikey/{key.pk}/change/").content.decode()
    assert "Usage, last 30 days" in page and "<svg" in page and "Tokens per day" in page
    assert "<td>m1</td><td>5</td><td>50</td><td>25</td><td>1</td>" in page
    listing = admin_client.get("/admin/llm_gateway/requestlog/").content.decode()
    assert "a-err" in listing and "Usage overview" in listing
    found = admin_client.get("/admin/llm_gateway/requestlog/?q=a-err").content.decode()
    assert "a-err" in found and ">a1<" not in found
    filtered = admin_client.get("/admin/llm_gateway/requestlog/?ending=error:upstream_error")
    assert filtered.status_code == 200 and "a-err" in filtered.content.decode()
    by_key = admin_client.get(f"/admin/llm_gateway/requestlog/?key={key.pk}").content.decode()
    assert "a-err" in by_key and "a3" in by_key
    other = admin_client.get("/admin/llm_gateway/requestlog/?key=name:static").content.decode()
    assert "a-err" not in other
    overview = admin_client.get("/admin/llm_gateway/requestlog/usage/").content.decode()
    assert "Top keys by tokens" in overview and "charted" in overview
    assert "<td>upstream_error</td><td>1</td>" in overview
    assert admin_client.get("/admin/llm_gateway/requestlog/add/").status_code == 403


def test_only_staff_see_usage_and_the_request_log(client, django_user_model):
    user = django_user_model.objects.create_user("plain", password="pw-plain-user-123")
    client.force_login(user)
    for url in ("/admin/llm_gateway/requestlog/", "/admin/llm_gateway/requestlog/usage/"):
        assert client.get(url).status_code == 302  # to the login page: not staff
