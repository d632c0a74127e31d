"""Every OpenTelemetry name the gateway emits, in one place, pinned to one version of the
GenAI semantic conventions: v1.41.0, the last released in the main repository (the GenAI
names are in "Development" status: a later version may rename them). A test holds each name
equal to ``opentelemetry-semantic-conventions``' own constant, so an upgrade that renames one
fails there, not in a dashboard."""

from __future__ import annotations

CONVENTIONS = "1.41.0"
SCHEMA_URL = f"https://opentelemetry.io/schemas/{CONVENTIONS}"
SCOPE = "llm_gateway"

# --- spans: GenAI -------------------------------------------------------------------------
OPERATION_NAME = "gen_ai.operation.name"
PROVIDER_NAME = "gen_ai.provider.name"
REQUEST_MODEL = "gen_ai.request.model"
REQUEST_MAX_TOKENS = "gen_ai.request.max_tokens"
REQUEST_TEMPERATURE = "gen_ai.request.temperature"
REQUEST_TOP_P = "gen_ai.request.top_p"
REQUEST_STREAM = "gen_ai.request.stream"
RESPONSE_ID = "gen_ai.response.id"
RESPONSE_MODEL = "gen_ai.response.model"
RESPONSE_FINISH_REASONS = "gen_ai.response.finish_reasons"
RESPONSE_TIME_TO_FIRST_CHUNK = "gen_ai.response.time_to_first_chunk"
USAGE_INPUT_TOKENS = "gen_ai.usage.input_tokens"
USAGE_OUTPUT_TOKENS = "gen_ai.usage.output_tokens"
USAGE_CACHE_READ_INPUT_TOKENS = "gen_ai.usage.cache_read.input_tokens"
INPUT_MESSAGES = "gen_ai.input.messages"  # content: only when capture is opted in
OUTPUT_MESSAGES = "gen_ai.output.messages"
SYSTEM_INSTRUCTIONS = "gen_ai.system_instructions"
TOKEN_TYPE = "gen_ai.token.type"
# --- spans: general -----------------------------------------------------------------------
SERVER_ADDRESS = "server.address"
SERVER_PORT = "server.port"
ERROR_TYPE = "error.type"
HTTP_REQUEST_METHOD = "http.request.method"
HTTP_RESPONSE_STATUS_CODE = "http.response.status_code"
URL_PATH = "url.path"
CLIENT_ADDRESS = "client.address"
# --- spans: the gateway's own -------------------------------------------------------------
GATEWAY_REQUEST_ID = "llm_gateway.request.id"
GATEWAY_KEY_NAME = "llm_gateway.key.name"
GATEWAY_KEY_ID = "llm_gateway.key.id"
GATEWAY_TEAM = "llm_gateway.team"
GATEWAY_REPLICA = "llm_gateway.replica"
GATEWAY_ATTEMPT = "llm_gateway.attempt"  # 1 for the first try on a replica, 2 after a failover
GATEWAY_PRIORITY = "llm_gateway.priority"
GATEWAY_QUEUE_WAIT = "llm_gateway.queue.wait"  # seconds in the gateway queue
GATEWAY_ENDING = "llm_gateway.ending"  # done, client_disconnected, error:<code>, ...
GATEWAY_USAGE_SOURCE = "llm_gateway.usage.source"  # engine, counted or estimated
GATEWAY_LIMITED = "llm_gateway.limited"
GATEWAY_COST = "llm_gateway.cost"  # in the currency of the price book

# gen_ai.operation.name by endpoint (below /v1); a realtime session is its own operation.
OPERATIONS = {
    "/chat/completions": "chat",
    "/responses": "chat",
    "/messages": "chat",
    "/completions": "text_completion",
    "/embeddings": "embeddings",
    "/realtime": "realtime",
}
TOKEN_INPUT, TOKEN_OUTPUT = "input", "output"

# --- metrics, with the conventions' recommended bucket boundaries ---------------------------
CLIENT_TOKEN_USAGE = "gen_ai.client.token.usage"
CLIENT_OPERATION_DURATION = "gen_ai.client.operation.duration"
SERVER_TIME_TO_FIRST_TOKEN = "gen_ai.server.time_to_first_token"
SERVER_TIME_PER_OUTPUT_TOKEN = "gen_ai.server.time_per_output_token"
TOKEN_USAGE_BUCKETS = (
    1, 4, 16, 64, 256, 1024, 4096, 16384, 65536, 262144, 1048576, 4194304, 16777216, 67108864,
)  # fmt: skip
DURATION_BUCKETS = (
    0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 0.64, 1.28, 2.56, 5.12, 10.24, 20.48, 40.96, 81.92,
)  # fmt: skip
TIME_TO_FIRST_TOKEN_BUCKETS = (
    0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 7.5, 10.0,
)  # fmt: skip
TIME_PER_OUTPUT_TOKEN_BUCKETS = (
    0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1.0, 2.5,
)  # fmt: skip
