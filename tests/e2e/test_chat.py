"""Chat completions through the gateway, with the official OpenAI SDK as the client."""

from __future__ import annotations

import json
import time

import httpx
import openai
import pytest

from conftest import ANTHROPIC_SECRET, GATEWAY_KEY, OPENAI_SECRET

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]},
    },
}


def last_request(upstream, path_suffix: str) -> dict:
    matching = [r for r in upstream.requests() if r["path"].endswith(path_suffix)]
    assert matching, f"the upstream saw no request to {path_suffix}: {upstream.requests()}"
    return matching[-1]


def collect(stream) -> tuple[str, list, str | None, dict | None]:
    """Text, tool calls reassembled by index, finish reason and usage of a streamed completion."""
    text, calls, finish, usage = "", {}, None, None
    for chunk in stream:
        if chunk.usage:
            usage = chunk.usage.model_dump()
        for choice in chunk.choices:
            delta = choice.delta
            text += delta.content or ""
            for call in delta.tool_calls or []:
                entry = calls.setdefault(call.index, {"id": None, "name": None, "arguments": ""})
                entry["id"] = call.id or entry["id"]
                if call.function:
                    entry["name"] = call.function.name or entry["name"]
                    entry["arguments"] += call.function.arguments or ""
            finish = choice.finish_reason or finish
    return text, [calls[i] for i in sorted(calls)], finish, usage


def test_plain_chat_through_openai(gateway, upstream):
    out = gateway.client().chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hello there"}], max_tokens=20, seed=3
    )
    assert out.choices[0].message.content
    assert out.choices[0].finish_reason == "stop"
    sent = last_request(upstream, "/v1/chat/completions")["body"]
    assert sent["model"] == "gpt-4o"
    assert sent["messages"] == [{"role": "user", "content": "hello there"}]
    assert sent["max_tokens"] == 20 and sent["seed"] == 3


def test_plain_chat_through_anthropic_translates_system_stop_and_max_tokens(gateway, upstream):
    out = gateway.client().chat.completions.create(
        model="anthropic/claude-sonnet-4-6",
        messages=[{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hello there"}],
        max_completion_tokens=64,
        stop=["END"],
        temperature=0.3,
    )
    assert out.object == "chat.completion"
    assert out.choices[0].message.content
    assert out.choices[0].finish_reason == "stop"
    assert out.usage.completion_tokens > 0
    sent = last_request(upstream, "/anthropic/v1/messages")["body"]
    assert sent["model"] == "claude-sonnet-4-6"
    assert sent["system"] == [{"type": "text", "text": "Be brief."}]
    assert sent["messages"] == [{"role": "user", "content": [{"type": "text", "text": "hello there"}]}]
    assert sent["max_tokens"] == 64 and sent["stop_sequences"] == ["END"] and sent["temperature"] == 0.3


def test_multi_part_content_with_an_image_reaches_anthropic_as_blocks(gateway, upstream):
    gateway.client().chat.completions.create(
        model="anthropic/claude-sonnet-4-6",
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "What is this?"},
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
        ]}],
    )
    blocks = last_request(upstream, "/anthropic/v1/messages")["body"]["messages"][0]["content"]
    assert blocks[0] == {"type": "text", "text": "What is this?"}
    assert blocks[1] == {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}


@pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"])
def test_streamed_chat_arrives_in_chunks_with_usage(gateway, upstream, model):
    stream = gateway.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "tell me a story"}], stream=True,
        stream_options={"include_usage": True},
    )
    text, calls, finish, usage = collect(stream)
    assert text and not calls
    assert finish == "stop"
    assert usage and usage["completion_tokens"] > 0


def test_streamed_anthropic_chat_without_include_usage_has_no_usage_chunk(gateway, upstream):
    stream = gateway.client().chat.completions.create(
        model="anthropic/claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}], stream=True
    )
    text, _, finish, usage = collect(stream)
    assert text and finish == "stop" and usage is None


def test_tool_calls_through_anthropic(gateway, upstream):
    upstream.behave({"type": "reply", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Paris"}}]})
    out = gateway.client().chat.completions.create(
        model="anthropic/claude-sonnet-4-6",
        messages=[{"role": "user", "content": "Weather in Paris?"}],
        tools=[WEATHER_TOOL],
        tool_choice="required",
    )
    choice = out.choices[0]
    assert choice.finish_reason == "tool_calls"
    call = choice.message.tool_calls[0]
    assert call.function.name == "get_weather"
    assert json.loads(call.function.arguments) == {"city": "Paris"}
    sent = last_request(upstream, "/anthropic/v1/messages")["body"]
    assert sent["tools"][0]["name"] == "get_weather"
    assert sent["tools"][0]["input_schema"]["required"] == ["city"]
    assert sent["tool_choice"] == {"type": "any"}


def test_streamed_tool_calls_through_anthropic_carry_argument_deltas(gateway, upstream):
    upstream.behave({"type": "reply", "tool_calls": [
        {"name": "get_weather", "arguments": {"city": "Paris"}},
        {"name": "get_weather", "arguments": {"city": "Lyon"}},
    ]})
    stream = gateway.client().chat.completions.create(
        model="anthropic/claude-sonnet-4-6",
        messages=[{"role": "user", "content": "Weather in Paris and Lyon?"}],
        tools=[WEATHER_TOOL],
        stream=True,
    )
    _, calls, finish, _ = collect(stream)
    assert finish == "tool_calls"
    assert [c["name"] for c in calls] == ["get_weather", "get_weather"]
    assert [json.loads(c["arguments"]) for c in calls] == [{"city": "Paris"}, {"city": "Lyon"}]
    assert all(c["id"] for c in calls) and calls[0]["id"] != calls[1]["id"]


def test_tool_results_reach_anthropic_as_tool_result_blocks(gateway, upstream):
    out = gateway.client().chat.completions.create(
        model="anthropic/claude-sonnet-4-6",
        messages=[
            {"role": "user", "content": "Weather in Paris?"},
            {"role": "assistant", "content": None, "tool_calls": [
                {"id": "toolu_1", "type": "function", "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}},
            ]},
            {"role": "tool", "tool_call_id": "toolu_1", "content": "21C and sunny"},
        ],
        tools=[WEATHER_TOOL],
    )
    assert out.choices[0].message.content
    messages = last_request(upstream, "/anthropic/v1/messages")["body"]["messages"]
    assert messages[1] == {"role": "assistant", "content": [
        {"type": "tool_use", "id": "toolu_1", "name": "get_weather", "input": {"city": "Paris"}}]}
    assert messages[2] == {"role": "user", "content": [
        {"type": "tool_result", "tool_use_id": "toolu_1", "content": "21C and sunny"}]}


def test_missing_or_wrong_gateway_key_is_401(gateway, upstream):
    with pytest.raises(openai.AuthenticationError) as err:
        openai.OpenAI(base_url=f"{gateway.url}/v1", api_key="sk-wrong", max_retries=0).chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 401
    response = httpx.post(f"{gateway.url}/v1/chat/completions", json={"model": "openai/gpt-4o", "messages": []})
    assert response.status_code == 401
    assert response.json()["error"]["type"] == "authentication_error"
    assert upstream.requests() == []


def raw_chat(gateway, content: bytes | str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", content=content,
                      headers={"authorization": f"Bearer {GATEWAY_KEY}", "content-type": "application/json"})


def test_malformed_json_is_a_400_in_the_openai_shape(gateway, upstream):
    response = raw_chat(gateway, b'{"model": "openai/gpt-4o", "messages": [')
    assert response.status_code == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "not a valid chat completion request" in error["message"]
    assert upstream.requests() == []


def test_wrong_field_type_is_a_400_naming_the_field(gateway, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": 42}])
    assert err.value.body["param"] == "messages[0].content"
    assert upstream.requests() == []


@pytest.mark.parametrize("model", ["nope/gpt-4o", "not-a-route"])
def test_unknown_model_or_provider_is_a_404(gateway, upstream, model):
    with pytest.raises(openai.NotFoundError) as err:
        gateway.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
    assert err.value.body["code"] == "model_not_found"


def test_body_too_large_is_a_413(gateway, upstream):
    response = raw_chat(gateway, json.dumps({"model": "openai/gpt-4o", "messages": [{"role": "user", "content": "x" * 70000}]}))
    assert response.status_code == 413
    assert response.json()["error"]["code"] == "request_too_large"
    assert upstream.requests() == []


def test_field_anthropic_cannot_express_is_refused_not_dropped(gateway, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(
            model="anthropic/claude-sonnet-4-6", messages=[{"role": "user", "content": "hi"}], logprobs=True)
    assert err.value.body["param"] == "logprobs"
    assert upstream.requests() == []


def test_rate_limit_then_success_is_retried_after_retry_after(gateway, upstream):
    upstream.behave({"type": "fail", "status": 429, "retry_after": 0.5, "times": 1})
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-gateway-attempts"] == "2"
    seen = upstream.requests()
    assert [r["status"] for r in seen] == [429, 200]
    assert seen[1]["started_at"] - seen[0]["ended_at"] >= 0.45, "the gateway honoured Retry-After"


def test_three_server_errors_surface_as_an_error(gateway, upstream):
    upstream.behave({"type": "fail", "status": 500, "times": 3})
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client().chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502
    assert err.value.body["type"]
    assert [r["status"] for r in upstream.requests()] == [500, 500, 500]


def test_unreachable_provider_is_a_502_after_retries(gateway, upstream):
    with pytest.raises(openai.InternalServerError) as err:
        gateway.client().chat.completions.create(model="unreachable/m", messages=[{"role": "user", "content": "hi"}])
    assert err.value.status_code == 502
    assert "cannot reach provider `unreachable`" in err.value.message


def test_route_falls_back_when_its_primary_keeps_failing(gateway, upstream):
    upstream.behave({"type": "fail", "status": 503, "times": 3, "match": {"provider": "anthropic"}})
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="smart", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content
    assert raw.headers["x-gateway-provider"] == "openai"
    assert [r["provider"] for r in upstream.requests()] == ["anthropic"] * 3 + ["openai"]


@pytest.mark.parametrize("model", ["openai/gpt-4o", "anthropic/claude-sonnet-4-6"])
@pytest.mark.parametrize("kind", ["disconnect", "truncate"])
def test_stream_cut_mid_way_ends_with_an_error_the_sdk_raises(gateway, upstream, model, kind):
    upstream.behave({"type": "stream_fault", "kind": kind, "after_chunks": 2})
    stream = gateway.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "tell me a long story"}], stream=True)
    with pytest.raises(openai.APIError) as err:
        collect(stream)
    assert "stream" in str(err.value.message)
    assert len(upstream.requests()) == 1, "no retry once bytes reached the client"


def test_echo_provider_answers_with_no_upstream(gateway, upstream):
    out = gateway.client().chat.completions.create(model="demo/echo", messages=[{"role": "user", "content": "ping pong"}])
    assert out.choices[0].message.content == "ping pong"
    assert upstream.requests() == []


def test_models_lists_routes(gateway, upstream):
    ids = [m.id for m in gateway.client().models.list()]
    assert {"smart", "long-context", "tuned"} <= set(ids)


def test_secrets_never_appear_in_the_gateway_log(gateway, upstream):
    gateway.client().chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    deadline = time.monotonic() + 30
    while '"msg":"trace"' not in gateway.log() and time.monotonic() < deadline:
        time.sleep(0.1)  # the summary is written after the response, off the response path
    log = gateway.log()
    assert '"msg":"trace"' in log, "traces are logged"
    for secret in (OPENAI_SECRET, ANTHROPIC_SECRET, GATEWAY_KEY):
        assert secret not in log


def test_route_moves_on_at_once_on_a_configured_status(gateway, upstream):
    upstream.behave({"type": "fail", "status": 400, "message": "context length exceeded", "times": 1})
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="long-context", messages=[{"role": "user", "content": "hi"}])
    assert raw.parse().choices[0].message.content
    seen = upstream.requests()
    assert [r["status"] for r in seen] == [400, 200]
    assert [r["body"]["model"] for r in seen] == ["gpt-4o-mini", "gpt-4.1"]


def test_route_transforms_apply_to_body_and_response_headers(gateway, upstream):
    raw = gateway.client().chat.completions.with_raw_response.create(
        model="tuned", messages=[{"role": "user", "content": "hi"}], max_tokens=5)
    assert raw.headers["x-route"] == "tuned"
    sent = last_request(upstream, "/v1/chat/completions")["body"]
    assert sent["temperature"] == 0.1 and sent["max_tokens"] == 42
