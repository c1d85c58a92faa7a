"""Routes of kind `custom`: a raw, non-OpenAI upstream with its own URL, headers, request template
and response mapping, used through the official OpenAI SDK."""

from __future__ import annotations

import openai
import pytest

from conftest import OPENAI_SECRET
from test_chat import collect


def test_a_custom_route_maps_the_request_and_the_answer(gateway, receiver, upstream):
    client = openai.OpenAI(base_url=f"{gateway.url}/proprietary/v1", api_key=gateway.client().api_key, max_retries=0)
    out = client.chat.completions.create(
        model="anything", max_tokens=32,
        messages=[{"role": "system", "content": "Be exact."}, {"role": "user", "content": "What is 2+2?"}])
    assert out.choices[0].message.content == "You asked: What is 2+2?"
    assert out.choices[0].finish_reason == "length"
    assert (out.usage.prompt_tokens, out.usage.completion_tokens) == (11, 4)
    received = receiver.received()
    assert received["upstream_requests"][-1] == {"path": "/proprietary/generate", "body": {
        "engine": "big-7b", "input": {"question": "What is 2+2?", "context": "Be exact."},
        "limits": {"max_new_tokens": 32}}}
    headers = received["upstream_headers"][-1]
    assert headers["x-api-key"] == OPENAI_SECRET and headers["x-tenant"] == "e2e"
    assert "authorization" not in headers


def test_a_custom_route_streams_its_whole_answer_when_asked_to_stream(gateway, receiver, upstream):
    stream = gateway.client().chat.completions.create(
        model="proprietary", messages=[{"role": "user", "content": "hello"}], stream=True,
        stream_options={"include_usage": True})
    text, calls, finish, usage = collect(stream)
    assert text == "You asked: hello" and calls == [] and finish == "length"
    assert usage["total_tokens"] == 15
    assert "stream" not in receiver.received()["upstream_requests"][-1]["body"]


def test_a_field_the_template_has_no_place_for_is_a_400(gateway, receiver, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(
            model="proprietary", messages=[{"role": "user", "content": "hi"}], temperature=0.3)
    assert err.value.body["param"] == "temperature"
    assert receiver.received()["upstream_requests"] == []
