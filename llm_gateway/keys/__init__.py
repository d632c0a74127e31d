"""API keys: their format and digest (``format``), the per-process store that checks them
with no query on a request's path (``store``), and bearer authentication (``authentication``).
"""

from .authentication import SCOPE_KEY, Authenticator, bearer_token, websocket_token
from .format import NewKey, digest, digests_equal, display, generate, prefix_of, state
from .store import KeyStore, KeyStoreOptions, Verdict

__all__ = [
    "SCOPE_KEY",
    "Authenticator",
    "KeyStore",
    "KeyStoreOptions",
    "NewKey",
    "Verdict",
    "bearer_token",
    "digest",
    "digests_equal",
    "display",
    "generate",
    "prefix_of",
    "state",
    "websocket_token",
]
