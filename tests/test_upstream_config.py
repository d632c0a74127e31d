import pytest

from llm_gateway.upstream.config import ReplicaSpec, parse_replicas, problems


def test_a_replica_list_from_json():
    replicas = parse_replicas(
        '[{"url": "http://10.0.0.5:8000/v1/", "models": ["llama"], "api_key": "k", "weight": 2,'
        ' "read_timeout": 30}, {"url": "http://10.0.0.6:8000/v1", "name": "b"}]'
    )
    assert replicas == [
        ReplicaSpec("http://10.0.0.5:8000/v1", ("llama",), "k", 2.0, "", None, 30.0),
        ReplicaSpec("http://10.0.0.6:8000/v1", None, "", 1.0, "b"),
    ]


@pytest.mark.parametrize(
    "value, message",
    [
        ("{", "not JSON"),
        ('{"url": "x"}', "must be a list"),
        ("[1]", "not an object"),
        ('[{"models": ["m"]}]', "has no url"),
        ('[{"url": "http://a/v1", "modles": ["m"]}]', "unknown fields: modles"),
        ('[{"url": "http://a/v1", "models": "m"}]', "list of model names"),
        ('[{"url": "http://a/v1", "weight": 0}]', "weight must be a number above 0"),
        ('[{"url": "http://a/v1", "read_timeout": "soon"}]', "read_timeout"),
    ],
)
def test_values_that_are_no_replica_list(value, message):
    with pytest.raises(ValueError, match=message):
        parse_replicas(value)


def test_problems_the_check_reports():
    found = problems(
        [
            ReplicaSpec("ftp://a/v1"),
            ReplicaSpec("http://b/v1", models=()),
            ReplicaSpec("http://c/v1", name="c"),
            ReplicaSpec("http://c/v1"),
            ReplicaSpec("http://d/v1", name="c"),
        ]
    )
    assert len(found) == 4, found
    assert "must be an http:// or https:// URL" in found[0]
    assert "serves no model" in found[1]
    assert "listed twice" in found[2]
    assert "the name 'c' is used twice" in found[3]


def test_the_schedulers_fields_of_a_replica():
    (spec,) = parse_replicas(
        '[{"url": "http://e:8000/v1", "max_in_flight": 64, "queue_threshold": 2,'
        ' "kv_threshold": 0.85, "metrics_url": "http://e:9400/metrics"}]'
    )
    assert (spec.max_in_flight, spec.queue_threshold, spec.kv_threshold) == (64, 2.0, 0.85)
    assert spec.metrics_url == "http://e:9400/metrics"
    (named,) = parse_replicas([{"url": "http://e:8000/v1", "provider": " sglang "}])
    assert named.provider == "sglang"
    (default,) = parse_replicas([{"url": "http://e:8000/v1"}])
    assert (default.max_in_flight, default.queue_threshold, default.kv_threshold) == (None, 1, 0.9)
    for field, value, message in (
        ("max_in_flight", 0, "max_in_flight"),
        ("max_in_flight", 1.5, "max_in_flight"),
        ("queue_threshold", 0.5, "queue_threshold"),
        ("kv_threshold", 1.5, "kv_threshold"),
        ("metrics_url", "ftp://x", "metrics_url"),
        ("provider", 7, "provider"),
    ):
        with pytest.raises(ValueError, match=message):
            parse_replicas([{"url": "http://e:8000/v1", field: value}])
