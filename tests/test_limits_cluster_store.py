"""The pure parts of the limits on a Redis Cluster: counters grouped by slot, one decision
from each slot's, and the redirects a node answers (the cluster itself:
``test_limits_redis_cluster_e2e``)."""

from __future__ import annotations

import hiredis
from redis.crc import key_slot

from llm_gateway.limits.cluster_store import by_slot, merged
from llm_gateway.limits.redis_client import Redirected, RedisUnavailable, failure
from llm_gateway.limits.store import Decision


def test_a_key_and_its_owner_share_a_slot_and_a_team_has_its_own():
    counters = ["ns:{u7}:key:abc:requests", "ns:{t3}:team:3:requests", "ns:{u7}:user:7:tokens"]
    assert key_slot(counters[0].encode()) != key_slot(counters[1].encode())
    assert by_slot(counters) == [[0, 2], [1]]  # in order of first appearance


def test_the_merged_decision_keeps_the_checks_order_and_the_first_refusal():
    groups = [[0, 2], [1]]
    keys = Decision(None, False, 0.0, 100, used=[5, 6], resets=[1.0, 2.0])
    team = Decision(0, False, 7.5, 101, used=[9], resets=[3.0])
    decision = merged(groups, [keys, team], 3)
    assert decision.refused == 1 and decision.retry_after == 7.5
    assert decision.used == [5, 9, 6] and decision.resets == [1.0, 3.0, 2.0]
    assert decision.seconds == [100, 101, 100]  # each slot's own clock, for the settle
    both = merged(groups, [Decision(1, False, 2.0, 100, [5, 6], [1, 2]), team], 3)
    assert both.refused == 1 and both.retry_after == 7.5  # the team (index 1) before index 2


def test_everything_admitted_merges_to_no_refusal():
    decision = merged(
        [[0], [1]],
        [Decision(None, False, 0, 4, [1], [1]), Decision(None, False, 0, 5, [2], [2])],
        2,
    )
    assert decision.refused is None and decision.used == [1, 2] and decision.second == 4


def test_moved_and_ask_name_the_node_and_other_errors_do_not_redirect():
    moved = failure(_reply("MOVED 3999 10.0.0.2:6381"))
    assert isinstance(moved, Redirected) and not moved.ask
    assert (moved.slot, moved.address) == (3999, ("10.0.0.2", 6381))
    ask = failure(_reply("ASK 12 10.0.0.3:7000"))
    assert isinstance(ask, Redirected) and ask.ask and ask.address == ("10.0.0.3", 7000)
    other = failure(_reply("READONLY You can't write against a read only replica."))
    assert type(other) is RedisUnavailable


def _reply(text: str) -> hiredis.ReplyError:
    return hiredis.ReplyError(text)
