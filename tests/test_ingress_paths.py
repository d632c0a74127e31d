import pytest
from django.test import override_settings

from llm_gateway.ingress.paths import app_path, canonical, is_guarded, is_under

PREFIXES = ["/v1"]


@pytest.mark.parametrize(
    ("path", "expected"),
    [
        ("/v1/models", "/v1/models"),
        ("//v1/models", "/v1/models"),
        ("/v1//models", "/v1/models"),
        ("/v1/../v1/models", "/v1/models"),
        ("/health/../v1/models", "/v1/models"),
        ("/./v1/./models", "/v1/models"),
        ("/../../v1", "/v1"),
        ("/v1/../health", "/health"),
        ("v1/models", "/v1/models"),
    ],
)
def test_canonical(path, expected):
    assert canonical(path) == expected


@pytest.mark.parametrize(
    ("path", "guarded"),
    [
        ("/v1", True),
        ("/v1/", True),
        ("/v1/chat/completions", True),
        ("//v1/models", True),
        ("/v1/../v1/models", True),
        ("/health/../v1/models", True),
        ("/v1/../health", True),  # fail closed: the path as sent is under /v1
        ("/v10/models", False),
        ("/v1x", False),
        ("/health", False),
        ("/admin/", False),
        ("/", False),
        ("/V1/models", False),
    ],
)
def test_is_guarded(path, guarded):
    assert is_guarded(path, PREFIXES) is guarded


def test_is_under_requires_a_segment_boundary():
    assert is_under("/v1", "/v1/") and is_under("/v1/a", "/v1")
    assert not is_under("/v1a", "/v1")


def test_app_path_strips_root_path_and_force_script_name():
    assert app_path({"path": "/api/v1/models", "root_path": "/api"}) == "/v1/models"
    assert app_path({"path": "/v1/models", "root_path": "/api"}) == "/v1/models"
    assert app_path({"path": "/apiv1/models", "root_path": "/api"}) == "/apiv1/models"
    with override_settings(FORCE_SCRIPT_NAME="/gw"):
        assert app_path({"path": "/gw/v1/models", "root_path": ""}) == "/v1/models"
