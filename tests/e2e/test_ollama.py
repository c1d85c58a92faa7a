"""Ollama's native API through the gateway (the test upstream plays /api/chat, NDJSON streams)."""

from __future__ import annotations

import json

import pytest

from test_chat import WEATHER_TOOL, collect


def ollama_request(receiver) -> dict:
    requests = [r for r in receiver.received()["upstream_requests"] if r["path"] == "/api/chat"]
    assert requests, "the upstream saw no /api/chat request"
    return requests[-1]["body"]


def test_plain_chat_through_ollama(gateway, receiver, upstream):
    out = gateway.client().chat.completions.create(
        model="ollama/llama3.2", messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],
        max_tokens=32, temperature=0.2)
    assert out.choices[0].message.content == "Hello from Ollama"
    assert out.usage.prompt_tokens == 11 and out.usage.completion_tokens == 3
    sent = ollama_request(receiver)
    assert sent["stream"] is False and sent["model"] == "llama3.2"
    assert sent["options"] == {"num_predict": 32, "temperature": 0.2}
    assert sent["messages"][0] == {"role": "system", "content": "Be brief."}


def test_streamed_chat_through_ollama_ndjson(gateway, receiver, upstream):
    stream = gateway.client().chat.completions.create(
        model="ollama/llama3.2", messages=[{"role": "user", "content": "hi"}], stream=True,
        stream_options={"include_usage": True})
    text, calls, finish, usage = collect(stream)
    assert text == "Hello from Ollama" and not calls and finish == "stop"
    assert usage["completion_tokens"] == 3
    assert ollama_request(receiver)["stream"] is True


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_through_ollama(gateway, receiver, upstream, stream):
    kwargs = dict(model="ollama/llama3.2", messages=[{"role": "user", "content": "Weather in Paris?"}], tools=[WEATHER_TOOL])
    if stream:
        _, calls, finish, _ = collect(gateway.client().chat.completions.create(stream=True, **kwargs))
        name, arguments, call_id = calls[0]["name"], calls[0]["arguments"], calls[0]["id"]
    else:
        out = gateway.client().chat.completions.create(**kwargs)
        call = out.choices[0].message.tool_calls[0]
        finish, name, arguments, call_id = out.choices[0].finish_reason, call.function.name, call.function.arguments, call.id
    assert finish == "tool_calls" and name == "get_weather" and json.loads(arguments) == {"city": "Paris"} and call_id
    assert ollama_request(receiver)["tools"][0]["function"]["name"] == "get_weather"
