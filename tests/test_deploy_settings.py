"""The production environment the README documents makes `manage.py check --deploy` silent."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys

from .servers import ROOT

PRODUCTION = {
    "DJANGO_ALLOWED_HOSTS": "gateway.example.com",
    "DJANGO_CSRF_TRUSTED_ORIGINS": "https://gateway.example.com",
    "DJANGO_SECURE_PROXY_SSL_HEADER": "HTTP_X_FORWARDED_PROTO,https",
    "DJANGO_SECURE_SSL_REDIRECT": "true",
    "DJANGO_SECURE_COOKIES": "true",
    "DJANGO_SECURE_HSTS_SECONDS": "31536000",
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS": "true",
    "DJANGO_SECURE_HSTS_PRELOAD": "true",
    "LLM_GATEWAY_UPSTREAM_URL": "http://10.0.0.5:8000/v1",
}


def check_deploy(**env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, "DJANGO_SETTINGS_MODULE": "project.settings", **env}
    environ.pop("DJANGO_DEBUG", None)
    return subprocess.run(
        [sys.executable, "manage.py", "check", "--deploy"],
        cwd=ROOT,
        env=environ,
        capture_output=True,
        text=True,
    )


def test_the_documented_production_environment_passes_check_deploy():
    result = check_deploy(**PRODUCTION, DJANGO_SECRET_KEY=secrets.token_urlsafe(50))
    assert result.returncode == 0, result.stderr
    assert "System check identified no issues" in result.stdout, result.stdout + result.stderr


def test_without_it_check_deploy_says_what_is_missing():
    result = check_deploy(LLM_GATEWAY_UPSTREAM_URL="http://10.0.0.5:8000/v1")
    for warning in ("security.W004", "security.W008", "security.W012", "security.W016"):
        assert warning in result.stdout + result.stderr
