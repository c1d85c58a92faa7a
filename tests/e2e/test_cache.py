"""The response cache end to end, on both targets, with the official OpenAI SDK and llmock as the
model: entries live in each platform's store (Workers KV in workerd, Spin's key-value store), so a
hit is what any instance would serve. Hit and miss, expiry, the client's bypass, principal
isolation (and a route that shares), and a streamed request served from a whole cached answer."""

from __future__ import annotations

import time

import openai
import pytest

from conftest import GATEWAY_KEY, SECOND_KEY, TARGETS, gateway_config, running_gateway

# The route whose expiry is tested; the others keep entries long past any test's length.
TTL_SECONDS = 2


def cached_config(llmock_url: str, receiver_url: str) -> dict:
    config = gateway_config(llmock_url, receiver_url)
    config["routes"].update({
        "cached": {"models": ["openai/gpt-4o"], "cache": {"ttl_seconds": 300}},
        "short-lived": {"models": ["openai/gpt-4o"], "cache": {"ttl_seconds": TTL_SECONDS}},
        "cached-shared": {"models": ["openai/gpt-4o"], "cache": {"ttl_seconds": 60, "shared": True}},
        "uncached": {"models": ["openai/gpt-4o"]},
    })
    return config


@pytest.fixture(scope="module", params=TARGETS)
def cached(request, llmock, receiver_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"cached-{request.param}")
    with running_gateway(request.param, cached_config(llmock.url, receiver_server.url), workdir) as gw:
        yield gw


def ask(gateway, route: str, content: str, key: str = GATEWAY_KEY, **kwargs):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": content}], **kwargs)


def settle(gateway, route: str, content: str, key: str = GATEWAY_KEY, within: float = 30) -> bool:
    """An entry is stored after its response has left (waitUntil, or Spin's deferred work): waits
    until it is there, asking with `Cache-Control: only-if-cached` (a miss is a 504 that never
    reaches the upstream). False when no hit came within `within` seconds."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        try:
            ask(gateway, route, content, key, extra_headers={"cache-control": "only-if-cached"})
            return True
        except openai.APIStatusError as missed:
            assert missed.status_code == 504 and missed.code == "cache_miss", missed
        time.sleep(0.05)
    return False


def test_only_if_cached_is_a_504_on_a_miss_and_never_reaches_the_upstream(cached, upstream):
    with pytest.raises(openai.APIStatusError) as missed:
        ask(cached, "cached", "never asked before", extra_headers={"cache-control": "only-if-cached"})
    assert missed.value.status_code == 504 and missed.value.code == "cache_miss"
    assert upstream.requests() == []


def test_a_repeated_request_is_a_hit_served_without_the_upstream(cached, upstream):
    first = ask(cached, "cached", "what is the capital of France?")
    assert first.headers["x-gateway-cache"] == "miss"
    assert settle(cached, "cached", "what is the capital of France?")
    second = ask(cached, "cached", "what is the capital of France?")
    assert second.headers["x-gateway-cache"] == "hit"
    assert int(second.headers["age"]) <= 300
    assert second.parse().choices[0].message.content == first.parse().choices[0].message.content
    assert second.parse().id == first.parse().id
    assert len(upstream.requests()) == 1
    # A different question is a different entry.
    assert ask(cached, "cached", "and of Spain?").headers["x-gateway-cache"] == "miss"
    assert len(upstream.requests()) == 2


def test_an_entry_expires_after_the_routes_ttl(cached, upstream):
    # A hit can only be seen while the entry is fresh: on a machine slow enough to spend the whole
    # TTL between storing the entry and asking for it, the check is tried with another question.
    for attempt in range(3):
        question = f"expiry question {attempt}"
        assert ask(cached, "short-lived", question).headers["x-gateway-cache"] == "miss"
        if settle(cached, "short-lived", question, within=TTL_SECONDS):
            break
    else:
        pytest.fail(f"no entry was seen within its {TTL_SECONDS} s TTL, three times")
    time.sleep(TTL_SECONDS + 0.2)
    assert ask(cached, "short-lived", question).headers["x-gateway-cache"] == "miss"
    assert len(upstream.requests()) == attempt + 2


def test_cache_control_no_cache_goes_to_the_upstream(cached, upstream):
    ask(cached, "cached", "bypass question")
    assert settle(cached, "cached", "bypass question")
    bypassed = ask(cached, "cached", "bypass question", extra_headers={"cache-control": "no-cache"})
    assert bypassed.headers["x-gateway-cache"] == "miss"
    assert len(upstream.requests()) == 2
    # The refreshed answer replaced the entry: a hit now serves it.
    deadline = time.monotonic() + 30
    while ask(cached, "cached", "bypass question").parse().id != bypassed.parse().id:
        assert time.monotonic() < deadline, "the refreshed answer was never stored"
        time.sleep(0.05)
    assert len(upstream.requests()) == 2


def test_entries_are_not_shared_across_principals_unless_the_route_says_so(cached, upstream):
    ask(cached, "cached", "whose answer is this?")
    assert settle(cached, "cached", "whose answer is this?")
    assert ask(cached, "cached", "whose answer is this?", key=SECOND_KEY).headers["x-gateway-cache"] == "miss"
    ask(cached, "cached-shared", "a shared question")
    assert settle(cached, "cached-shared", "a shared question")
    assert ask(cached, "cached-shared", "a shared question", key=SECOND_KEY).headers["x-gateway-cache"] == "hit"
    assert len(upstream.requests()) == 3


def test_a_streamed_request_is_served_from_a_cached_answer_as_a_replayed_stream(cached, upstream):
    whole = ask(cached, "cached", "stream me the cached answer").parse()
    assert settle(cached, "cached", "stream me the cached answer")
    raw = ask(cached, "cached", "stream me the cached answer", stream=True)
    assert raw.headers["x-gateway-cache"] == "hit"
    assert raw.headers["content-type"].startswith("text/event-stream")
    chunks = list(raw.parse())
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == whole.choices[0].message.content
    assert chunks[-1].choices[0].finish_reason == whole.choices[0].finish_reason
    assert all(c.usage is None for c in chunks), "usage only when the client asks for it"
    assert len(upstream.requests()) == 1


def test_a_streamed_answer_is_not_stored_and_a_route_without_cache_says_nothing(cached, upstream):
    raw = ask(cached, "cached", "only ever streamed", stream=True)
    assert raw.headers["x-gateway-cache"] == "miss"
    list(raw.parse())
    # A streamed answer is never stored: no entry appears (a slow store could only hide a
    # failure here, never cause one).
    assert not settle(cached, "cached", "only ever streamed", within=1)
    assert ask(cached, "cached", "only ever streamed").headers["x-gateway-cache"] == "miss"
    assert "x-gateway-cache" not in ask(cached, "uncached", "no cache here").headers
