"""The OpenAI endpoints the gateway reads, as paths below the relay prefix: the one definition
for the core, the usage accounting and the Django face's URLs."""

from __future__ import annotations

CHAT = "/chat/completions"
COMPLETIONS = "/completions"
EMBEDDINGS = "/embeddings"
RESPONSES = "/responses"
MESSAGES = "/messages"  # Anthropic's Messages API, which vLLM serves and coding agents speak
MODELS = "/models"
REALTIME = "/realtime"

# OpenAI's endpoints whose answers the gateway reads (and fills usage into, when asked).
OPENAI_ENDPOINTS = frozenset({CHAT, COMPLETIONS, EMBEDDINGS, RESPONSES})
# Bodies parsed as JSON (to refuse a broken one early, to read ``model`` and ``max_tokens``
# and to meter the answer from its own usage).
JSON_ENDPOINTS = OPENAI_ENDPOINTS | {MESSAGES}
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
