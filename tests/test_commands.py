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


def test_create_with_every_limit_flag():
    argv = ["create_api_key", "limited", "--rpm", "60", "--tpm=1000", "--max-parallel", "4"]
    argv += ["--models", "llama-3-*, qwen2", "--token-budget", "500", "--budget-period", "month"]
    _, err = run(*argv)
    key = ApiKey.objects.get(name="limited")
    assert (key.rpm, key.tpm, key.max_parallel) == (60, 1000, 4)
    assert (key.allowed_models, key.token_budget, key.budget_period) == (
        "llama-3-*,qwen2",
        500,
        "month",
    )
    assert "60 rpm, 1000 tpm, 4 parallel, 500/month, models llama-3-*,qwen2" in err
    with pytest.raises(CommandError, match="not a whole number"):
        run("create_api_key", "bad", "--rpm", "lots")
    with pytest.raises(CommandError, match="invalid choice"):
        run("create_api_key", "bad", "--budget-period", "week")


def test_set_limits_changes_only_the_flags_given_and_0_or_none_clears():
    key, _ = ApiKey.create("team", rpm=10, tpm=99, allowed_models="a")
    out, _ = run("set_api_key_limits", f"sk-{key.prefix}", "--tpm", "0", "--max-parallel", "3")
    key.refresh_from_db()
    assert (key.rpm, key.tpm, key.max_parallel, key.allowed_models) == (10, None, 3, "a")
    assert out.strip() == f"team (sk-{key.prefix}-…): 10 rpm, 3 parallel, models a"
    run("set_api_key_limits", "team", "--rpm", "none", "--models", "none")
    key.refresh_from_db()
    assert (key.rpm, key.allowed_models) == (None, "")
    with pytest.raises(CommandError, match="No API key"):
        run("set_api_key_limits", "nobody", "--rpm", "1")


def test_list_shows_the_limits():
    ApiKey.create("capped", rpm=7, token_budget=100, allowed_models="m*")
    out, _ = run("list_api_keys")
    header, row = out.splitlines()[0].split(), next(r for r in out.splitlines() if "capped" in r)
    assert header[-5:] == ["RPM", "TPM", "PARALLEL", "BUDGET", "MODELS"]
    assert row.split()[-5:] == ["7", "-", "-", "100/day", "m*"]


def test_create_for_a_team_and_an_owner():
    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    team = Group.objects.create(name="ml-research")
    get_user_model().objects.create_user("ann")
    _, err = run("create_api_key", "teamed", "--team", "ml-research", "--owner", "ann")
    key = ApiKey.objects.get(name="teamed")
    assert key.team == team and key.owner.username == "ann"
    assert "team ml-research, owner ann" in err
    with pytest.raises(CommandError, match="No team"):
        run("create_api_key", "x", "--team", "nobody")
    with pytest.raises(CommandError, match="No user"):
        run("create_api_key", "y", "--owner", "nobody")


def test_set_team_and_user_limits_create_the_row_and_take_a_cost_budget():
    from decimal import Decimal

    from django.contrib.auth import get_user_model
    from django.contrib.auth.models import Group

    from llm_gateway.models import TeamLimits, UserLimits

    Group.objects.create(name="ml")
    out, _ = run("set_team_limits", "ml", "--cost-budget", "500", "--budget-period", "month")
    limits = TeamLimits.objects.get(group__name="ml")
    assert limits.cost_budget == Decimal("500") and limits.budget_period == "month"
    assert out.strip() == "team ml: 500 USD/month"
    run("set_team_limits", "ml", "--rpm", "60", "--cost-budget", "none")
    limits.refresh_from_db()
    assert (limits.rpm, limits.cost_budget) == (60, None)
    with pytest.raises(CommandError, match="six decimal places"):
        run("set_team_limits", "ml", "--cost-budget", "0.0000001")
    with pytest.raises(CommandError):
        run("set_team_limits", "ml", "--cost-budget", "-1")
    get_user_model().objects.create_user("bob")
    run("set_user_limits", "bob", "--cost-budget", "12.5")
    assert UserLimits.objects.get(user__username="bob").cost_budget == Decimal("12.5")
    run("create_api_key", "k")
    run("set_api_key_limits", "k", "--cost-budget", "1.25")
    assert ApiKey.objects.get(name="k").cost_budget == Decimal("1.25")


def test_priority_class_cap_and_share_on_keys_users_and_teams():
    from django.contrib.auth.models import Group

    from llm_gateway.models import TeamLimits

    run("create_api_key", "k", "--priority", "batch", "--share", "3")
    key = ApiKey.objects.get(name="k")
    assert (key.priority, key.max_priority, key.share) == ("batch", "", 3)
    out, _ = run("set_api_key_limits", "k", "--max-priority", "interactive", "--share", "none")
    key.refresh_from_db()
    assert (key.priority, key.max_priority, key.share) == ("batch", "interactive", None)
    assert "class batch" in out and "up to interactive" in out
    Group.objects.create(name="ml")
    run("set_team_limits", "ml", "--priority", "interactive", "--share", "2")
    team = TeamLimits.objects.get(group__name="ml")
    assert (team.priority, team.share) == ("interactive", 2)
    run("set_team_limits", "ml", "--priority", "none")
    team.refresh_from_db()
    assert team.priority == ""
    with pytest.raises(CommandError):
        run("set_api_key_limits", "k", "--priority", "urgent")


def test_set_model_price_creates_updates_counts_versions_and_deletes():
    from llm_gateway.models import ModelPrice

    out, _ = run("set_model_price", "llama-3-*", "--input", "0.15", "--output", "0.60")
    assert "input 0.15, cached input 0.15, output 0.6 USD per million tokens (version 1)" in out
    out, _ = run("set_model_price", "llama-3-*", "--cached-input", "0.075")
    price = ModelPrice.objects.get(pattern="llama-3-*").as_price()
    assert (str(price.cached_input), price.version) == ("0.075000", 2)
    with pytest.raises(CommandError, match="needs --input and --output"):
        run("set_model_price", "new-model", "--input", "1")
    with pytest.raises(CommandError, match="a price is 0 or more"):
        run("set_model_price", "llama-3-*", "--input", "-1")
    run("set_model_price", "llama-3-*", "--delete")
    assert not ModelPrice.objects.exists()
