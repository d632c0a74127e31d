"""The names the gateway emits are the conventions' own, as the semantic-conventions package
spells them (an upgrade that renames one fails here, not in someone's dashboard)."""

from __future__ import annotations

from opentelemetry.semconv._incubating.attributes import gen_ai_attributes as gen_ai
from opentelemetry.semconv._incubating.metrics import gen_ai_metrics
from opentelemetry.semconv.attributes import (
    client_attributes,
    error_attributes,
    http_attributes,
    server_attributes,
    url_attributes,
)

from llm_gateway.observe.tracing import names


def test_span_attributes_are_the_conventions_names():
    assert names.OPERATION_NAME == gen_ai.GEN_AI_OPERATION_NAME
    assert names.PROVIDER_NAME == gen_ai.GEN_AI_PROVIDER_NAME
    assert names.REQUEST_MODEL == gen_ai.GEN_AI_REQUEST_MODEL
    assert names.REQUEST_MAX_TOKENS == gen_ai.GEN_AI_REQUEST_MAX_TOKENS
    assert names.REQUEST_TEMPERATURE == gen_ai.GEN_AI_REQUEST_TEMPERATURE
    assert names.REQUEST_TOP_P == gen_ai.GEN_AI_REQUEST_TOP_P
    assert names.REQUEST_STREAM == gen_ai.GEN_AI_REQUEST_STREAM
    assert names.RESPONSE_ID == gen_ai.GEN_AI_RESPONSE_ID
    assert names.RESPONSE_MODEL == gen_ai.GEN_AI_RESPONSE_MODEL
    assert names.RESPONSE_FINISH_REASONS == gen_ai.GEN_AI_RESPONSE_FINISH_REASONS
    assert names.RESPONSE_TIME_TO_FIRST_CHUNK == gen_ai.GEN_AI_RESPONSE_TIME_TO_FIRST_CHUNK
    assert names.USAGE_INPUT_TOKENS == gen_ai.GEN_AI_USAGE_INPUT_TOKENS
    assert names.USAGE_OUTPUT_TOKENS == gen_ai.GEN_AI_USAGE_OUTPUT_TOKENS
    assert names.USAGE_CACHE_READ_INPUT_TOKENS == gen_ai.GEN_AI_USAGE_CACHE_READ_INPUT_TOKENS
    assert names.INPUT_MESSAGES == gen_ai.GEN_AI_INPUT_MESSAGES
    assert names.OUTPUT_MESSAGES == gen_ai.GEN_AI_OUTPUT_MESSAGES
    assert names.SYSTEM_INSTRUCTIONS == gen_ai.GEN_AI_SYSTEM_INSTRUCTIONS
    assert names.TOKEN_TYPE == gen_ai.GEN_AI_TOKEN_TYPE
    assert (
        gen_ai.GenAiTokenTypeValues.INPUT.value,
        gen_ai.GenAiTokenTypeValues.OUTPUT.value,
    ) == (names.TOKEN_INPUT, names.TOKEN_OUTPUT)
    assert names.SERVER_ADDRESS == server_attributes.SERVER_ADDRESS
    assert names.SERVER_PORT == server_attributes.SERVER_PORT
    assert names.ERROR_TYPE == error_attributes.ERROR_TYPE
    assert names.HTTP_REQUEST_METHOD == http_attributes.HTTP_REQUEST_METHOD
    assert names.HTTP_RESPONSE_STATUS_CODE == http_attributes.HTTP_RESPONSE_STATUS_CODE
    assert names.URL_PATH == url_attributes.URL_PATH
    assert names.CLIENT_ADDRESS == client_attributes.CLIENT_ADDRESS


def test_operations_are_the_conventions_values():
    known = {value.value for value in gen_ai.GenAiOperationNameValues}
    assert {op for op in names.OPERATIONS.values() if op != "realtime"} <= known


def test_metric_names_are_the_conventions_names():
    assert names.CLIENT_TOKEN_USAGE == gen_ai_metrics.GEN_AI_CLIENT_TOKEN_USAGE
    assert names.CLIENT_OPERATION_DURATION == gen_ai_metrics.GEN_AI_CLIENT_OPERATION_DURATION
    assert names.SERVER_TIME_TO_FIRST_TOKEN == gen_ai_metrics.GEN_AI_SERVER_TIME_TO_FIRST_TOKEN
    assert names.SERVER_TIME_PER_OUTPUT_TOKEN == gen_ai_metrics.GEN_AI_SERVER_TIME_PER_OUTPUT_TOKEN


def test_the_gateways_own_names_are_under_its_prefix():
    own = [value for key, value in vars(names).items() if key.startswith("GATEWAY_")]
    assert own and all(value.startswith("llm_gateway.") for value in own)
