from llm_gateway.limits.spec import Limits, parse_models, scopes_for

OWNER = "owner__llm_gateway_limits__"


def test_model_patterns():
    limits = Limits(models=parse_models("llama-3-*, qwen2 [ab]c?"))
    assert limits.models == ("llama-3-*", "qwen2", "[ab]c?")
    assert limits.allows("llama-3-8b") and limits.allows("qwen2") and limits.allows("acx")
    assert not limits.allows("qwen2.5") and not limits.allows("LLAMA-3-8b")
    assert Limits().allows("anything")


def test_an_empty_limit_is_no_limit():
    assert not Limits()
    assert not Limits(budget_period="month")
    assert Limits(rpm=1) and Limits(models=("a",))


def test_scopes_share_the_owners_hash_tag():
    row = {"id": 3, "prefix": "0123abcd", "name": "k", "owner_id": 9, "owner_name": "ann"}
    row |= {"rpm": 5, OWNER + "tpm": 100, OWNER + "budget_period": "month"}
    key, owner = scopes_for(row, OWNER)
    assert (key.kind, key.id, key.tag, key.limits.rpm) == ("key", "0123abcd", "u9", 5)
    assert (owner.kind, owner.id, owner.tag, owner.limits.tpm) == ("user", "9", "u9", 100)
    assert owner.label == "user 'ann'" and key.label == "API key 'k'"
    alone = scopes_for({"id": 3, "prefix": "0123abcd", "name": "k", "rpm": 0}, OWNER)
    assert alone == ()  # 0 is no limit
    (only,) = scopes_for({"id": 3, "prefix": "0123abcd", "name": "k", "tpm": 7}, OWNER)
    assert only.tag == "k0123abcd"


def test_a_team_scope_has_its_own_tag_and_a_money_budget_in_micro_units():
    team = "team__llm_gateway_limits__"
    row = {"id": 3, "prefix": "0123abcd", "name": "k", "owner_id": 9, "team_id": 4}
    row |= {
        "team_name": "ml-research",
        team + "cost_budget": "500.00",
        team + "budget_period": "month",
    }
    (scope,) = scopes_for(row)
    assert (scope.kind, scope.id, scope.tag) == ("team", "4", "t4")
    assert scope.limits.cost_budget == 500_000_000 and scope.limits.budget_period == "month"
    assert scope.label == "team ml-research"
    assert Limits(cost_budget=1)
