"""The adversarial suite, on both targets: two principals sharing one gateway, pages of foreign
origins and DNS-rebound ones, a hostile MCP server that frames its bytes to fool a parser, repeated
JSON keys, and host errors that must not leak. Every case is tried from the wrong side."""

from __future__ import annotations

import hashlib
import json
import re

import httpx
import openai
import pytest

from conftest import (ADMIN_KEY, ALLOWED_ORIGIN, GATEWAY_KEY, ROOT, SECOND_KEY, TARGETS, gateway_config, ready_process,
                      running_gateway)

POLICIES = ROOT / "config" / "examples" / "policies"
LEGACY = "2025-06-18"
EMAIL = "jane.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
ROUTES_ONLY_KEY = "sk-e2e-routes-only-key"
REDACT_PII_IN_PROMPTS = ('@outcome("redact")\n@redact("pii")\n'
                         'forbid(principal, action == Gateway::Action::"process_prompt", resource)\n'
                         'when { context.pii_count > 0 };')
HOST_INTERNALS = ("wasmtime", "hyper", "backtrace", "ErrorCode", "Network connection lost", "StreamError")


@pytest.fixture(scope="module")
def hostile():
    with ready_process(str(ROOT / "tests" / "e2e" / "mcp" / "hostile_server.py")) as url:
        yield url


@pytest.fixture(scope="module", params=TARGETS)
def secured(request, llmock, receiver_server, mcp_upstreams, hostile, tmp_path_factory):
    config = gateway_config(llmock.url, receiver_server.url, mcp_upstreams)
    redact = {"id": "redact-pii-in-tool-results", "cedar": (POLICIES / "redact-pii-in-tool-results.cedar").read_text()}
    config["mcp_servers"]["hostile"] = {"url": f"{hostile}/mcp", "tools": ["lookup"], "protocol": "legacy",
                                        "policies": [redact]}
    config["mcp_servers"]["hostile-open"] = {"url": f"{hostile}/mcp", "tools": ["lookup"], "protocol": "legacy"}
    config["providers"]["hostile"] = {"type": "openai", "base_url": f"{hostile}/v1"}
    config["providers"]["redirected"] = {"type": "openai", "base_url": f"{hostile}/redirect/v1",
                                         "api_key_secret": "openai_api_key"}
    # Route controls that naming a model directly must not get around.
    config["providers"]["hidden"] = {"type": "echo", "direct": False}
    config["routes"]["through-hidden"] = {"models": ["hidden/echo-1"]}
    config["routes"]["chat-only"] = {"models": ["demo/echo-1"]}
    config["routes"]["metered-echo"] = {"models": ["demo/echo-1"], "rate_limit": {"tokens_per_minute": 100000}}
    config["routes"]["pii-redacted"] = {"models": ["openai/gpt-4o"],
                                        "policies": [{"id": "redact-pii-in-prompts", "cedar": REDACT_PII_IN_PROMPTS}]}
    config["keys"].append({"sha256": hashlib.sha256(ROUTES_ONLY_KEY.encode()).hexdigest(),
                           "principal": {"kind": "agent", "id": "routes-only"},
                           "allowed_routes": ["chat-only"], "allowed_models": []})
    with running_gateway(request.param, config, tmp_path_factory.mktemp(f"secured-{request.param}")) as gw:
        yield gw


def rpc(gw, slug: str, body, *, key: str = GATEWAY_KEY, session: str | None = None, headers: dict | None = None,
        method: str = "POST") -> httpx.Response:
    sent = {"authorization": f"Bearer {key}", "content-type": "application/json",
            "accept": "application/json, text/event-stream", "mcp-protocol-version": LEGACY, **(headers or {})}
    if session:
        sent["mcp-session-id"] = session
    content = body if isinstance(body, (str, bytes)) or body is None else json.dumps(body)
    return httpx.request(method, f"{gw.url}/mcp/{slug}/", headers=sent, content=content, timeout=30)


def open_session(gw, slug: str, key: str = GATEWAY_KEY) -> str:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": LEGACY, "capabilities": {}, "clientInfo": {"name": "security", "version": "1"}}}
    answer = rpc(gw, slug, init, key=key)
    assert answer.status_code == 200, answer.text
    session = answer.headers["mcp-session-id"]
    rpc(gw, slug, {"jsonrpc": "2.0", "method": "notifications/initialized"}, key=key, session=session)
    return session


def tools_list(gw, slug: str, session: str, key: str = GATEWAY_KEY) -> httpx.Response:
    return rpc(gw, slug, {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, key=key, session=session)


def whatwg_events(body: str) -> list[str]:
    """The data of each event as a browser's EventSource reads it (lines end at CRLF, CR or LF)."""
    events, data = [], []
    for line in re.split(r"\r\n|\r|\n", body):
        if line == "":
            if data:
                events.append("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].removeprefix(" "))
    return events


def seen(relay: str) -> list[dict]:
    return httpx.get(f"{relay}/_seen").json()


# 1. Sessions belong to whoever opened them.

def test_another_principal_cannot_use_listen_to_or_end_a_session(secured, mcp_upstreams):
    recorded = mcp_upstreams["recorded"]
    session = open_session(secured, "py-internal")
    assert tools_list(secured, "py-internal", session).status_code == 200
    httpx.post(f"{recorded}/_reset")
    for method, body in [("POST", {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}), ("GET", None), ("DELETE", None)]:
        answer = rpc(secured, "py-internal", body, key=SECOND_KEY, session=session, method=method)
        assert answer.status_code == 404, f"{method}: {answer.text}"
        assert answer.json()["error"]["message"] == "Session not found"
    assert seen(recorded) == [], "nothing of the second principal's reached the server"
    # The owner's session is intact, and the server only ever sees its own id.
    assert tools_list(secured, "py-internal", session).status_code == 200
    server_side = seen(recorded)[-1]["mcp-session-id"]
    assert session.startswith("gw2.") and server_side != session and server_side not in session
    assert rpc(secured, "py-internal", None, session=session, method="DELETE").status_code == 200
    assert tools_list(secured, "py-internal", session).status_code == 404, "an ended session is refused"


def test_the_servers_own_session_id_or_a_forged_one_opens_nothing(secured, mcp_upstreams):
    recorded = mcp_upstreams["recorded"]
    session = open_session(secured, "py-internal")
    tools_list(secured, "py-internal", session)
    server_side = seen(recorded)[-1]["mcp-session-id"]
    httpx.post(f"{recorded}/_reset")
    for presented in [server_side, session[:-2] + ("00" if not session.endswith("00") else "11"), "gw2.00"]:
        assert tools_list(secured, "py-internal", presented).status_code == 404, presented
    # A session opened at one server is no key to another.
    assert tools_list(secured, "py-all", session).status_code == 404
    assert seen(recorded) == []


# 2. No page drives the gateway unless its origin is allowed.

def test_a_page_of_a_foreign_origin_is_refused_before_anything_else(secured, mcp_upstreams):
    chat = {"model": "demo/echo-1", "messages": [{"role": "user", "content": "hi"}]}
    for origin in ["https://evil.example", "null", "http://localhost:1"]:
        answer = httpx.post(f"{secured.url}/v1/chat/completions", json=chat,
                            headers={"authorization": f"Bearer {GATEWAY_KEY}", "origin": origin})
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "origin_not_allowed"), origin
        assert "access-control-allow-origin" not in answer.headers
    httpx.post(f"{mcp_upstreams['recorded']}/_reset")
    answer = rpc(secured, "py-internal", {"jsonrpc": "2.0", "id": 1, "method": "tools/list"},
                 headers={"origin": "https://evil.example"})
    assert (answer.status_code, answer.json()["jsonrpc"]) == (403, "2.0")
    assert seen(mcp_upstreams["recorded"]) == []


def test_no_page_can_push_a_configuration_even_with_the_admin_key(secured):
    evil = {"version": 1, "providers": {"openai": {"type": "openai", "base_url": "https://evil.example/v1",
                                                   "api_key_secret": "openai_api_key"}}}
    for origin in ["https://evil.example", ALLOWED_ORIGIN]:
        answer = httpx.put(f"{secured.url}/admin/config", json=evil,
                           headers={"authorization": f"Bearer {ADMIN_KEY}", "origin": origin})
        assert (answer.status_code, answer.json()["error"]["code"]) == (403, "origin_not_allowed"), origin
        read = httpx.get(f"{secured.url}/admin/config", headers={"authorization": f"Bearer {ADMIN_KEY}", "origin": origin})
        assert read.status_code == 403
    assert httpx.get(f"{secured.url}/admin/config", headers={"authorization": f"Bearer {ADMIN_KEY}"}).status_code == 200


def test_a_dns_rebound_page_is_refused_by_its_host_name(secured):
    for path in ["/v1/models", "/mcp/py-all/", "/admin/config", "/healthz"]:
        answer = httpx.get(f"{secured.url}{path}", headers={"host": "evil.example:8787",
                                                            "authorization": f"Bearer {GATEWAY_KEY}"})
        assert answer.status_code == 403, f"{path}: {answer.text}"
    port = httpx.URL(secured.url).port
    for name in [f"localhost:{port}", f"127.0.0.1:{port}"]:
        answer = httpx.get(f"{secured.url}/v1/models", headers={"host": name, "authorization": f"Bearer {GATEWAY_KEY}"})
        assert answer.status_code == 200, name


def test_a_browser_app_on_an_allowed_origin_gets_its_preflight_and_reads_the_answer(secured):
    # What the OpenAI JS SDK's fetch asks a browser to preflight.
    asked = "authorization, content-type, x-stainless-lang, x-stainless-package-version, x-stainless-os"
    preflight = httpx.request("OPTIONS", f"{secured.url}/v1/chat/completions", headers={
        "origin": ALLOWED_ORIGIN, "access-control-request-method": "POST", "access-control-request-headers": asked})
    assert preflight.status_code == 204
    assert preflight.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert preflight.headers["access-control-allow-headers"] == asked
    answer = httpx.post(f"{secured.url}/v1/chat/completions",
                        json={"model": "demo/echo-1", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"authorization": f"Bearer {GATEWAY_KEY}", "origin": ALLOWED_ORIGIN})
    assert answer.status_code == 200
    assert answer.headers["access-control-allow-origin"] == ALLOWED_ORIGIN
    assert "x-request-id" in answer.headers["access-control-expose-headers"]


# 3. What a hostile server frames is what the gateway inspects.

def test_a_tool_result_framed_with_bare_crs_is_redacted_as_the_client_reads_it(secured):
    call = {"jsonrpc": "2.0", "id": 5, "method": "tools/call", "params": {"name": "lookup", "arguments": {}}}
    answer = rpc(secured, "hostile", call, session=open_session(secured, "hostile"))
    assert answer.status_code == 200
    events = whatwg_events(answer.text)
    result = next(json.loads(e) for e in events if '"result"' in e)
    text = result["result"]["content"][0]["text"]
    assert EMAIL not in answer.text and AWS_KEY not in answer.text, answer.text
    assert "[REDACTED" in text, text
    # Without policies the result passes, re-serialized: nothing of the hostile framing remains.
    open_answer = rpc(secured, "hostile-open", call, session=open_session(secured, "hostile-open"))
    assert "\r" not in open_answer.text and EMAIL in open_answer.text
    assert len(whatwg_events(open_answer.text)) == 2


def test_a_server_answer_with_a_repeated_key_is_never_relayed(secured):
    answer = tools_list(secured, "hostile-open", open_session(secured, "hostile-open"))
    assert answer.status_code == 502, answer.text
    assert "rm_rf" not in answer.text and answer.json()["error"]["code"] == -32603


def test_a_client_body_with_a_repeated_key_never_reaches_the_server(secured, hostile):
    session = open_session(secured, "hostile-open")
    before = httpx.get(f"{hostile}/_calls").json()
    for body in ['{"jsonrpc":"2.0","id":7,"method":"tools/call","params":{"name":"lookup","name":"rm_rf","arguments":{}}}',
                 '{"jsonrpc":"2.0","id":7,"method":"tools/list","method":"tools/call","params":{"name":"rm_rf"}}']:
        answer = rpc(secured, "hostile-open", body, session=session)
        assert answer.status_code == 400 and "duplicate key" in answer.json()["error"]["message"], answer.text
    assert httpx.get(f"{hostile}/_calls").json() == before


# 9. Host errors reach clients as a few fixed words, the same on both targets.

def test_an_unreachable_provider_reads_the_same_on_both_targets(secured):
    answer = httpx.post(f"{secured.url}/v1/chat/completions",
                        json={"model": "unreachable/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"authorization": f"Bearer {GATEWAY_KEY}"}, timeout=60)
    assert answer.status_code == 502
    # workerd says `Network connection lost.`, wasmtime `ErrorCode::ConnectionRefused`: both read as one.
    assert answer.json()["error"]["message"] == "cannot reach provider `unreachable`: connection failed"


def test_a_stream_cut_by_the_upstream_ends_with_fixed_words_and_no_host_internals(secured):
    answer = httpx.post(f"{secured.url}/v1/chat/completions",
                        json={"model": "hostile/gpt-4o", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
                        headers={"authorization": f"Bearer {GATEWAY_KEY}"}, timeout=60)
    assert "connection reset" in answer.text, answer.text
    assert not any(word in answer.text for word in HOST_INTERNALS), answer.text
    assert "data: [DONE]" not in answer.text, "a broken stream never looks finished"


# 10. Smaller holes.

def test_a_provider_redirect_is_never_followed_with_its_key(secured, hostile):
    answer = httpx.post(f"{secured.url}/v1/chat/completions",
                        json={"model": "redirected/gpt-4o", "messages": [{"role": "user", "content": "hi"}]},
                        headers={"authorization": f"Bearer {GATEWAY_KEY}"}, timeout=60)
    assert answer.status_code >= 400
    assert httpx.get(f"{hostile}/_landed").json() == [], "the request followed the redirect to another origin"


# 6. Route controls cannot be got around by naming a model.

def test_a_key_kept_to_routes_and_a_provider_closed_to_direct_use(secured):
    routes_only = openai.OpenAI(base_url=f"{secured.url}/v1", api_key=ROUTES_ONLY_KEY, max_retries=0)
    for model in ["demo/echo-1", "through-hidden"]:
        with pytest.raises(openai.PermissionDeniedError) as refused:
            routes_only.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert refused.value.code == "model_not_allowed", model
    answer = routes_only.chat.completions.create(model="chat-only", messages=[{"role": "user", "content": "hi"}])
    assert answer.choices[0].message.content
    assert [m.id for m in routes_only.models.list()] == ["chat-only"]
    free = secured.client()
    with pytest.raises(openai.PermissionDeniedError) as refused:
        free.chat.completions.create(model="hidden/echo-1", messages=[{"role": "user", "content": "hi"}])
    assert refused.value.code == "model_not_allowed"
    assert free.chat.completions.create(model="through-hidden", messages=[{"role": "user", "content": "hi"}]).choices


# 5. A request that sets no maximum still reserves its output.

def test_a_request_without_max_tokens_reserves_a_default_output(secured):
    answer = httpx.post(f"{secured.url}/v1/chat/completions", headers={"authorization": f"Bearer {SECOND_KEY}"},
                        json={"model": "metered-echo", "messages": [{"role": "user", "content": "hi"}]})
    assert answer.status_code == 200
    assert int(answer.headers["x-ratelimit-remaining-tokens"]) <= 100000 - 4096


# 7. Every field that carries text is read.

def test_text_in_tool_descriptions_earlier_calls_and_file_names_is_redacted_before_the_model(secured, upstream):
    email = "jane.doe@example.com"
    secured.client().chat.completions.create(model="pii-redacted", messages=[
        {"role": "user", "content": [{"type": "text", "text": "see the file"},
                                     {"type": "file", "file": {"filename": f"{email}.pdf", "file_data": "data:application/pdf;base64,JVBER"}}]},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": "c1", "type": "function", "function": {"name": "lookup", "arguments": json.dumps({"who": email})}}]},
        {"role": "tool", "tool_call_id": "c1", "content": "done"},
        {"role": "user", "content": "go on"}],
        tools=[{"type": "function", "function": {"name": "lookup", "description": f"Mails {email}",
                                                  "parameters": {"type": "object", "properties": {}}}}])
    sent = json.dumps(upstream.requests()[-1]["body"])
    assert email not in sent and sent.count("[REDACTED") == 3, sent
