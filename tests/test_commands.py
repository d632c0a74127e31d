import io

import pytest
from django.core.management import CommandError, call_command

from llm_gateway import keys
from llm_gateway.models import ApiKey

pytestmark = pytest.mark.django_db


def run(*args):
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def test_create_prints_the_raw_key_as_the_last_line():
    out, _ = run("create_api_key", "ci")
    raw = out.strip().splitlines()[-1]
    key = ApiKey.objects.get(name="ci")
    assert keys.prefix_of(raw) == key.prefix and keys.digest(raw) == key.digest


def test_create_with_expiry_and_duplicate_name():
    run("create_api_key", "exp", "--expires-in-days", "2")
    assert ApiKey.objects.get(name="exp").expires_at is not None
    with pytest.raises(CommandError, match="already exists"):
        run("create_api_key", "exp")
    with pytest.raises(CommandError, match="above 0"):
        run("create_api_key", "neg", "--expires-in-days", "0")


def test_revoke_by_name_prefix_or_whole_prefix_form():
    a, raw_a = ApiKey.create("by-name")
    b, _ = ApiKey.create("by-prefix")
    c, _ = ApiKey.create("by-sk-prefix")
    assert "Revoked" in run("revoke_api_key", "by-name")[0]
    assert "Revoked" in run("revoke_api_key", b.prefix)[0]
    assert "Revoked" in run("revoke_api_key", f"sk-{c.prefix}-…")[0]
    assert {k.status for k in ApiKey.objects.all()} == {"revoked"}
    assert "already revoked" in run("revoke_api_key", "by-name")[0]
    with pytest.raises(CommandError, match="No API key"):
        run("revoke_api_key", "nothing-like-this")


def test_list_shows_no_secret():
    _, raw = ApiKey.create("listed")
    out, _ = run("list_api_keys")
    assert "listed" in out and "active" in out
    assert raw not in out and raw.split("-", 2)[2] not in out


def test_create_replace_swaps_the_key():
    _, first = ApiKey.create("quickstart")
    out, _ = run("create_api_key", "quickstart", "--replace")
    second = out.strip().splitlines()[-1]
    assert second != first
    assert ApiKey.objects.get(name="quickstart").digest == keys.digest(second)
