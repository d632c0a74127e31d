"""The example project served by the Django face alone: ``MIDDLEWARE`` + ``urls.py``.

No ASGI fast path (``project/asgi_django.py`` is Django's own application): the gateway's
middleware are in ``MIDDLEWARE`` and the OpenAI API is mounted at ``/llm/v1/``.
"""

import os

from .settings import *  # noqa: F403

ROOT_URLCONF = "project.urls_django"
ASGI_APPLICATION = "project.asgi_django.application"
# The fast face's LLM_GATEWAY_RELAY_PREFIX is not set to off: a process that does not build
# the fast face (gateway_application) is not held to it.
LLM_GATEWAY_AUTH_PREFIXES = os.environ.get("LLM_GATEWAY_AUTH_PREFIXES", "/llm/v1")
