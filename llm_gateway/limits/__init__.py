"""Per-key and per-owner limits: model allow-lists, requests and tokens per minute, requests
in flight, token budgets per day or month.

``spec`` says what a key may do, ``reserve`` what a request asks for, ``store`` (process
memory) and ``redis_store`` (shared by every process, through ``redis_client``) decide
atomically, ``refusals`` words the refusals and headers as OpenAI's API does, and ``policy``
ties them into the core.
"""

from .policy import LimitsOptions, LimitsPolicy
from .spec import Limits, Scope

__all__ = ["Limits", "LimitsOptions", "LimitsPolicy", "Scope"]
