"""Usage read from engines' answers; each case here was found by tests/test_sse_fuzz.py."""

from llm_gateway.core.usage import StreamMeter, whole_body_usage


def test_a_usage_object_without_counts_falls_back_to_counting():
    meter = StreamMeter()
    meter.feed(
        b'data: {"choices": [{"delta": {"content": "hi"}}]}\n\n'
        b'data: {"choices": [], "usage": {"prompt_tokens": null}}\n\n'
    )
    usage = meter.result(prompt_chars=8)
    assert (usage.prompt, usage.completion, usage.source) == (2, 1, "counted")
    whole = whole_body_usage(b'{"usage": {"prompt_tokens": "7"}, "choices": []}', 8)
    assert whole is not None and whole.source == "estimated" and whole.prompt == 2


def test_choices_that_are_not_a_list_are_no_text():
    usage = whole_body_usage(b'{"choices": 5}', 4)
    assert usage is not None and (usage.prompt, usage.completion) == (1, 0)


def test_negative_counts_are_no_counts():
    usage = whole_body_usage(b'{"usage": {"prompt_tokens": -50, "completion_tokens": 3}}', 4)
    assert usage is not None and (usage.prompt, usage.completion) == (None, 3)
