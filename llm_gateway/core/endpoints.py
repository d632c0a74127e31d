"""The OpenAI endpoints the gateway reads, as paths below the relay prefix: the one definition
for the core, the usage accounting and the Django face's URLs."""

from __future__ import annotations

CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"
RESPONSES = "/responses"
MODELS = "/models"
REALTIME = "/realtime"

# Bodies parsed as JSON (to refuse a broken one early and to read ``model``).
JSON_ENDPOINTS = frozenset({CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES})
# Streams the gateway asks the engine for usage on (``stream_options.include_usage``).
STREAMED_ENDPOINTS = frozenset({CHAT, COMPLETIONS})
# The Django face's named routes (``llm_gateway:chat`` and so on), each an endpoint above.
NAMED = {
    "chat": CHAT,
    "completions": COMPLETIONS,
    "embeddings": EMBEDDINGS,
    "responses": RESPONSES,
    "models": MODELS,
}
