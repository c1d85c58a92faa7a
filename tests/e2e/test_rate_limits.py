"""Rate limits end to end, on both targets, with the official OpenAI SDK: the limiter state lives in
each platform's own store (a Durable Object per limiter key in workerd, compare-and-swap on Spin's
key-value store in the Spin component), so these tests see what every edge location would see.
Bursts and refill, per-key isolation and shared quotas, the 429 and its headers, token quotas
settled from streamed usage, and many clients racing for one quota."""

from __future__ import annotations

import concurrent.futures
import time

import httpx
import openai
import pytest

from conftest import GATEWAY_KEY, SECOND_KEY, TARGETS, gateway_config, running_gateway

# A quota of 3 a minute refills one request every 20 s: nothing refills during a test's burst.
BURST = 3
# 30 a minute: one request every 2 s.
REFILL = 30
RACE = 20
TOKENS_PER_MINUTE = 500


def limited_config(llmock_url: str, receiver_url: str) -> dict:
    config = gateway_config(llmock_url, receiver_url)
    echo = ["demo/echo-1"]
    config["routes"].update({
        "burst": {"models": echo, "rate_limit": {"requests_per_minute": BURST}},
        "refill": {"models": echo, "rate_limit": {"requests_per_minute": REFILL}},
        "per-key": {"models": echo, "rate_limit": {"requests_per_minute": 2, "per": "key"}},
        "shared": {"models": echo, "rate_limit": {"requests_per_minute": 2, "per": "route"}},
        "race": {"models": echo, "rate_limit": {"requests_per_minute": RACE, "per": "route"}},
        # Reserves no output for requests without a maximum: these tests are about settlement.
        "tokens": {"models": echo, "rate_limit": {"tokens_per_minute": TOKENS_PER_MINUTE},
                   "default_max_output_tokens": 0},
        "llm-tokens": {"models": ["openai/gpt-4o"], "rate_limit": {"tokens_per_minute": 100_000}},
        "open": {"models": echo},
    })
    # A request's trace reaches the collector once its quotas are settled: the tests wait for it.
    config["telemetry"] = {"collector_url": receiver_url}
    return config


@pytest.fixture(scope="module", params=TARGETS)
def limited(request, llmock, receiver_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"limited-{request.param}")
    with running_gateway(request.param, limited_config(llmock.url, receiver_server.url), workdir) as gw:
        yield gw


def ask(gateway, route: str, key: str = GATEWAY_KEY, content: str = "hello", **kwargs):
    client = openai.OpenAI(base_url=f"{gateway.url}/v1", api_key=key, max_retries=0)
    return client.chat.completions.with_raw_response.create(
        model=route, messages=[{"role": "user", "content": content}], **kwargs)


def post(gateway, route: str, key: str = GATEWAY_KEY) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {key}"},
                      json={"model": route, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)


def test_a_burst_is_admitted_up_to_the_quota_and_the_next_is_a_429_with_retry_after(limited):
    remaining = []
    for _ in range(BURST):
        raw = ask(limited, "burst")
        assert raw.http_response.status_code == 200
        assert raw.headers["x-ratelimit-limit-requests"] == str(BURST)
        remaining.append(int(raw.headers["x-ratelimit-remaining-requests"]))
    assert remaining == [BURST - 1, BURST - 2, 0]
    with pytest.raises(openai.RateLimitError) as refused:
        ask(limited, "burst")
    error = refused.value
    assert error.status_code == 429
    assert error.code == "rate_limit_exceeded"
    assert "route `burst`" in error.message
    headers = error.response.headers
    # One request comes back every 20 s: the next is at most that far away.
    assert 1 <= int(headers["retry-after"]) <= 60 // BURST
    assert headers["x-ratelimit-limit-requests"] == str(BURST)
    assert headers["x-ratelimit-remaining-requests"] == "0"
    assert headers["x-ratelimit-reset-requests"].endswith("s")
    assert error.body["type"] == "requests"


def test_a_spent_quota_refills_at_its_rate(limited):
    # The limiter refills one request every `interval` seconds whatever the machine's speed, so
    # each bound below allows for the time the test measured itself taking.
    interval = 60 / REFILL
    started = time.monotonic()
    admitted = 0
    while True:
        # No later than the gateway's own moment of refusal, which Retry-After counts from.
        refused_at = time.monotonic()
        refused = post(limited, "refill")
        if refused.status_code != 200:
            break
        admitted += 1
        refilled = int((time.monotonic() - started) / interval) + 1
        assert admitted <= REFILL + refilled, "the quota never ran out"
    assert admitted >= REFILL
    assert refused.status_code == 429
    wait = int(refused.headers["retry-after"])
    assert 1 <= wait <= 60 // REFILL
    # The next request comes back within `wait` seconds (rounded up), so no sooner than `wait - 1`;
    # the one after it a whole interval later.
    time.sleep(wait + 0.1)
    assert post(limited, "refill").status_code == 200, "a request came back when Retry-After said"
    second = post(limited, "refill")
    if time.monotonic() - refused_at < (wait - 1) + interval:
        # Too soon for a second refill, however slow the machine was.
        assert second.status_code == 429, "and only one"


def test_each_key_has_its_own_quota_unless_the_route_shares_it(limited):
    assert [post(limited, "per-key").status_code for _ in range(3)] == [200, 200, 429]
    assert [post(limited, "per-key", SECOND_KEY).status_code for _ in range(3)] == [200, 200, 429]
    # Shared: two requests a minute for everyone on the route.
    assert post(limited, "shared").status_code == 200
    assert post(limited, "shared", SECOND_KEY).status_code == 200
    assert post(limited, "shared").status_code == 429
    assert post(limited, "shared", SECOND_KEY).status_code == 429
    # Other routes are not touched.
    assert post(limited, "open").status_code == 200
    assert "x-ratelimit-limit-requests" not in post(limited, "open").headers


def test_racing_clients_never_get_more_than_the_quota(limited):
    started = time.monotonic()
    with concurrent.futures.ThreadPoolExecutor(max_workers=12) as pool:
        statuses = list(pool.map(lambda _: post(limited, "race").status_code, range(3 * RACE)))
    elapsed = time.monotonic() - started
    assert set(statuses) <= {200, 429}
    # One request comes back every 3 s during the race; none is admitted beyond that.
    refilled = int(elapsed / (60 / RACE))
    assert RACE <= statuses.count(200) <= RACE + refilled, (statuses.count(200), elapsed)


def words(n: int) -> str:
    return " ".join(["a"] * n)


def test_token_quotas_are_settled_from_the_usage_a_stream_reports(limited, receiver):
    # 150 one-letter words: the estimate (a quarter of the body's bytes) is about 90 tokens; the
    # echo model reports 150 prompt plus 150 completion tokens in its stream's usage chunk.
    started = time.monotonic()
    raw = ask(limited, "tokens", content=words(150), stream=True, stream_options={"include_usage": True})
    usage = [chunk.usage for chunk in raw.parse() if chunk.usage]
    assert usage and usage[0].total_tokens == 300
    # The settlement runs after the response; the request's trace is exported once it is done.
    receiver.trace(raw.headers["x-trace-id"], timeout=30)
    # 300 of 500 are spent; a request estimated at ~90 fits, and its 300 do not leave room for another.
    second = ask(limited, "tokens", content=words(150))
    assert second.http_response.status_code == 200
    receiver.trace(second.headers["x-trace-id"], timeout=30)
    # The quota refills 500 tokens a minute: the third needs ~90 of 500 - 600 + what came back.
    refilled = (time.monotonic() - started) * TOKENS_PER_MINUTE / 60
    if refilled < 150:
        with pytest.raises(openai.RateLimitError) as refused:
            ask(limited, "tokens", content=words(150))
        assert refused.value.body["type"] == "tokens"
        assert refused.value.response.headers["x-ratelimit-limit-tokens"] == str(TOKENS_PER_MINUTE)


def test_a_request_larger_than_the_token_quota_is_refused_before_it_is_sent(limited):
    with pytest.raises(openai.RateLimitError) as refused:
        ask(limited, "tokens", content="hello", max_tokens=TOKENS_PER_MINUTE + 1)
    assert "too large" in refused.value.message


def test_token_quota_headers_come_with_an_upstream_answer(limited, upstream):
    raw = ask(limited, "llm-tokens", content="hello there", max_tokens=50)
    assert raw.http_response.status_code == 200
    assert raw.headers["x-ratelimit-limit-tokens"] == "100000"
    assert int(raw.headers["x-ratelimit-remaining-tokens"]) < 100_000
    assert len(upstream.requests()) == 1
