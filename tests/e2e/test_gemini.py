"""Gemini through the gateway, with llmock's Gemini API as the upstream."""

from __future__ import annotations

import json

import openai
import pytest

from test_chat import WEATHER_TOOL, collect, last_request


def test_plain_chat_through_gemini_translates_both_ways(gateway, upstream):
    out = gateway.client().chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        max_completion_tokens=64, stop=["END"], temperature=0.4,
    )
    assert out.choices[0].message.content and out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens > 0
    seen = last_request(upstream, "/gemini/v1beta/models/gemini-2.5-flash:generateContent")
    body = seen["body"]
    assert body["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert body["contents"] == [{"role": "user", "parts": [{"text": "hello there"}]}]
    assert body["generationConfig"] == {"maxOutputTokens": 64, "stopSequences": ["END"], "temperature": 0.4}


def test_streamed_chat_through_gemini(gateway, upstream):
    stream = gateway.client().chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "a story"}], stream=True,
        stream_options={"include_usage": True})
    text, calls, finish, usage = collect(stream)
    assert text and not calls and finish == "stop"
    assert usage and usage["completion_tokens"] > 0
    last_request(upstream, "/gemini/v1beta/models/gemini-2.5-flash:streamGenerateContent")


@pytest.mark.parametrize("stream", [False, True])
def test_tool_calls_through_gemini(gateway, upstream, stream):
    upstream.behave({"type": "reply", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]})
    kwargs = dict(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "Weather in Paris?"}],
                  tools=[WEATHER_TOOL], tool_choice="required")
    if stream:
        _, calls, finish, _ = collect(gateway.client().chat.completions.create(stream=True, **kwargs))
        name, arguments = calls[0]["name"], calls[0]["arguments"]
    else:
        out = gateway.client().chat.completions.create(**kwargs)
        finish = out.choices[0].finish_reason
        name, arguments = out.choices[0].message.tool_calls[0].function.name, out.choices[0].message.tool_calls[0].function.arguments
    assert finish == "tool_calls" and name == "get_weather" and json.loads(arguments) == {"city": "Paris"}
    body = upstream.requests()[-1]["body"]
    assert body["tools"][0]["functionDeclarations"][0]["name"] == "get_weather"
    assert body["toolConfig"] == {"functionCallingConfig": {"mode": "ANY"}}


def test_tool_results_reach_gemini_as_function_responses(gateway, upstream):
    gateway.client().chat.completions.create(
        model="gemini/gemini-2.5-flash",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "call_9", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
            {"role": "tool", "tool_call_id": "call_9", "content": "{\"temp\": 21}"},
        ],
        tools=[WEATHER_TOOL],
    )
    contents = upstream.requests()[-1]["body"]["contents"]
    assert contents[1]["parts"][0]["functionCall"]["name"] == "get_weather"
    assert contents[2]["parts"][0]["functionResponse"] == {"id": "call_9", "name": "get_weather", "response": {"temp": 21}}


def test_gemini_rate_limit_maps_to_429_after_retries(gateway, upstream):
    upstream.behave({"type": "fail", "status": 429, "times": 3, "match": {"provider": "gemini"}})
    with pytest.raises(openai.RateLimitError) as err:
        gateway.client().chat.completions.create(model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 429
    assert len(upstream.requests()) == 3


@pytest.mark.parametrize("kind", ["disconnect", "truncate"])
def test_gemini_stream_cut_mid_way_raises(gateway, upstream, kind):
    upstream.behave({"type": "stream_fault", "kind": kind, "after_chunks": 2})
    stream = gateway.client().chat.completions.create(
        model="gemini/gemini-2.5-flash", messages=[{"role": "user", "content": "tell me a long story please"}], stream=True)
    with pytest.raises(openai.APIError):
        collect(stream)
