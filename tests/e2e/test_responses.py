"""`/v1/responses` for providers without a native Responses API: translated through chat, with the
official SDK's Responses client (plain, streamed with its event accumulator, tools, multi-turn)."""

from __future__ import annotations

import json

import openai
import pytest

from test_chat import last_request

WEATHER = {
    "type": "function",
    "name": "get_weather",
    "description": "Current weather for a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
}


@pytest.mark.parametrize("model, path", [("anthropic/claude-sonnet-4-6", "/v1/messages"),
                                         ("gemini/gemini-2.5-flash", ":generateContent"),
                                         ("groq/llama-3.3-70b-versatile", "/chat/completions")])
def test_responses_are_translated_for_providers_without_a_native_api(gateway, upstream, model, path):
    out = gateway.client().responses.create(
        model=model, instructions="Answer briefly.", input="Say hi", max_output_tokens=64)
    assert out.object == "response" and out.status == "completed"
    assert out.output_text
    assert out.usage.input_tokens > 0 and out.usage.output_tokens > 0
    assert out.instructions == "Answer briefly."
    sent = last_request(upstream, path)["body"]
    assert "input" not in sent and "instructions" not in sent


def test_streamed_responses_for_anthropic_satisfy_the_sdk_accumulator(gateway, upstream):
    with gateway.client().responses.stream(model="anthropic/claude-sonnet-4-6", input="Tell a story") as stream:
        events = list(stream)
        final = stream.get_final_response()
    kinds = [e.type for e in events]
    assert kinds[:2] == ["response.created", "response.in_progress"]
    assert kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    assert text and final.output_text == text
    assert [e.sequence_number for e in events] == list(range(len(events)))
    assert final.usage.output_tokens > 0
    assert last_request(upstream, "/v1/messages")["body"]["stream"] is True


def test_function_calls_round_trip_through_anthropic(gateway, upstream):
    upstream.behave({"type": "reply", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]})
    client = gateway.client()
    first = client.responses.create(model="anthropic/claude-sonnet-4-6", input="Weather in Oslo?",
                                    tools=[WEATHER], tool_choice={"type": "function", "name": "get_weather"})
    calls = [item for item in first.output if item.type == "function_call"]
    assert len(calls) == 1 and calls[0].name == "get_weather"
    assert json.loads(calls[0].arguments) == {"city": "Oslo"}
    sent = last_request(upstream, "/v1/messages")["body"]
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tool_choice"] == {"type": "tool", "name": "get_weather"}

    upstream.behave({"type": "reply", "text": "3 degrees"})
    second = client.responses.create(
        model="anthropic/claude-sonnet-4-6", tools=[WEATHER],
        input=[{"role": "user", "content": "Weather in Oslo?"}, *[c.model_dump() for c in calls],
               {"type": "function_call_output", "call_id": calls[0].call_id, "output": "3C"}])
    assert second.output_text
    messages = last_request(upstream, "/v1/messages")["body"]["messages"]
    assert messages[1]["content"][0] == {"type": "tool_use", "id": calls[0].call_id, "name": "get_weather",
                                         "input": {"city": "Oslo"}}
    assert messages[2]["content"][0]["type"] == "tool_result"
    assert messages[2]["content"][0]["tool_use_id"] == calls[0].call_id


def test_streamed_function_call_arguments_arrive_as_deltas(gateway, upstream):
    upstream.behave({"type": "reply", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Lyon"}}]})
    with gateway.client().responses.stream(model="anthropic/claude-sonnet-4-6", input="Lyon?",
                                           tools=[WEATHER]) as stream:
        events = list(stream)
        final = stream.get_final_response()
    deltas = "".join(e.delta for e in events if e.type == "response.function_call_arguments.delta")
    assert json.loads(deltas) == {"city": "Lyon"}
    call = next(item for item in final.output if item.type == "function_call")
    assert json.loads(call.arguments) == {"city": "Lyon"} and call.call_id


def test_the_echo_provider_answers_responses_too(gateway, upstream):
    out = gateway.client().responses.create(model="demo/echo-1", input="one two three")
    assert out.output_text == "one two three"


@pytest.mark.parametrize("extra, param", [({"previous_response_id": "resp_1"}, "previous_response_id"),
                                          ({"tools": [{"type": "web_search"}]}, "tools[0].type"),
                                          ({"store": True}, "store")])
def test_what_chat_cannot_express_is_a_400_naming_the_field(gateway, upstream, extra, param):
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().responses.create(model="anthropic/claude-sonnet-4-6", input="x", **extra)
    assert err.value.body["param"] == param
    assert "anthropic" in err.value.message
    assert upstream.requests() == []
