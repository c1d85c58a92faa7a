"""OpenAI-compatible dialects through the gateway: Groq, Mistral, Together (llmock), Azure and
DeepSeek (the recording upstream of otlp_receiver.py)."""

from __future__ import annotations

import json

import openai
import pytest

from conftest import AZURE_SECRET
from test_chat import collect, last_request

LLMOCK_DIALECTS = {
    "groq": ("groq/llama-3.3-70b-versatile", "/groq/openai/v1/chat/completions"),
    "mistral": ("mistral/mistral-large-latest", "/mistral/v1/chat/completions"),
    "together": ("together/meta-llama/Llama-3-70b-chat-hf", "/together/v1/chat/completions"),
}


@pytest.mark.parametrize("dialect", sorted(LLMOCK_DIALECTS))
def test_plain_chat_through_each_dialect(gateway, upstream, dialect):
    model, path = LLMOCK_DIALECTS[dialect]
    out = gateway.client().chat.completions.create(model=model, messages=[{"role": "user", "content": "hello"}], max_tokens=20)
    assert out.choices[0].message.content and out.choices[0].finish_reason == "stop"
    seen = last_request(upstream, path)
    assert seen["provider"] == dialect
    assert seen["body"]["model"] == model.split("/", 1)[1]


@pytest.mark.parametrize("dialect", sorted(LLMOCK_DIALECTS))
def test_streamed_chat_through_each_dialect(gateway, upstream, dialect):
    model, path = LLMOCK_DIALECTS[dialect]
    stream = gateway.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "a story"}], stream=True, stream_options={"include_usage": True})
    text, _, finish, usage = collect(stream)
    assert text and finish == "stop"
    sent = last_request(upstream, path)["body"]
    if dialect == "groq":
        assert sent["stream_options"] == {"include_usage": True}
        assert usage and usage["completion_tokens"] > 0
    else:
        # Mistral (422) and Together do not take stream_options; they send usage on their last chunk
        # unasked. llmock only sends it when asked, so usage is not asserted for them here.
        assert "stream_options" not in sent


@pytest.mark.parametrize("dialect", sorted(LLMOCK_DIALECTS))
def test_tool_calls_through_each_dialect(gateway, upstream, dialect):
    model, _ = LLMOCK_DIALECTS[dialect]
    upstream.behave({"type": "reply", "tool_calls": [{"name": "get_weather", "arguments": {"city": "Oslo"}}]})
    out = gateway.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "Weather in Oslo?"}],
        tools=[{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}])
    call = out.choices[0].message.tool_calls[0]
    assert call.function.name == "get_weather" and out.choices[0].finish_reason == "tool_calls"
    assert json.loads(call.function.arguments) == {"city": "Oslo"}
    # What the dialect's upstream received: the tool, in the OpenAI shape it takes.
    sent = last_request(upstream, LLMOCK_DIALECTS[dialect][1])["body"]
    assert [t["function"]["name"] for t in sent["tools"]] == ["get_weather"]
    assert sent["tools"][0]["type"] == "function" and sent["tools"][0]["function"]["parameters"] == {"type": "object"}
    assert sent["messages"] == [{"role": "user", "content": "Weather in Oslo?"}]


def test_mistral_receives_its_own_field_names(gateway, upstream):
    gateway.client().chat.completions.create(
        model="mistral/mistral-large-latest", messages=[{"role": "user", "content": "hi"}], seed=7,
        tools=[{"type": "function", "function": {"name": "f", "parameters": {"type": "object"}}}], tool_choice="required")
    sent = last_request(upstream, "/mistral/v1/chat/completions")["body"]
    assert sent["random_seed"] == 7 and "seed" not in sent
    assert sent["tool_choice"] == "any"


def test_groq_refuses_what_it_cannot_take_before_the_upstream(gateway, upstream):
    with pytest.raises(openai.BadRequestError) as err:
        gateway.client().chat.completions.create(
            model="groq/llama-3.3-70b-versatile", messages=[{"role": "user", "content": "hi"}], logprobs=True)
    assert err.value.body["param"] == "logprobs" and "groq" in err.value.message
    assert upstream.requests() == []


def test_azure_deployment_path_with_api_version_and_api_key(gateway, receiver, upstream):
    out = gateway.client().chat.completions.create(model="azure/gpt-4o", messages=[{"role": "user", "content": "hi"}])
    assert out.choices[0].message.content == "recorded"
    seen = receiver.received()
    assert seen["upstream_requests"][-1]["path"] == "/openai/deployments/prod-4o/chat/completions?api-version=2024-10-21"
    headers = seen["upstream_headers"][-1]
    assert headers["api-key"] == AZURE_SECRET and "authorization" not in headers


def test_azure_v1_path_takes_the_deployment_as_model(gateway, receiver, upstream):
    gateway.client().chat.completions.create(model="azure-v1/my-deployment", messages=[{"role": "user", "content": "hi"}])
    request = receiver.received()["upstream_requests"][-1]
    assert request["path"] == "/openai/v1/chat/completions"
    assert request["body"]["model"] == "my-deployment"


def test_deepseek_cache_hits_become_cached_tokens(gateway, receiver, upstream):
    out = gateway.client().chat.completions.create(model="deepseek/deepseek-chat", messages=[{"role": "user", "content": "hi"}])
    assert out.usage.prompt_tokens_details.cached_tokens == 3
    assert receiver.received()["upstream_requests"][-1]["path"] == "/chat/completions"


@pytest.mark.parametrize("model", ["azure/gpt-4o", "azure-v1/my-deployment", "deepseek/deepseek-chat"])
def test_streamed_chat_through_azure_and_deepseek(gateway, receiver, upstream, model):
    stream = gateway.client().chat.completions.create(
        model=model, messages=[{"role": "user", "content": "hi"}], stream=True, stream_options={"include_usage": True})
    text, _, finish, usage = collect(stream)
    assert text == "recorded" and finish == "stop"
    assert usage["prompt_tokens_details"]["cached_tokens"] == 3
    sent = receiver.received()["upstream_requests"][-1]["body"]
    assert sent["stream"] is True and sent["stream_options"] == {"include_usage": True}
