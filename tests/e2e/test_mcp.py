"""The MCP proxy at /mcp/{slug}/ with the official Python SDK (2.x) as client and server, on both
targets: each client era against each server mode, bridged where they differ, and the registry's
refusals (unknown slug, disabled server, tools not enabled, headers that disagree with the body)."""

from __future__ import annotations

import asyncio
import json
import subprocess

import httpx
import httpx2
import pytest
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPError
from mcp_types import ElicitResult

from conftest import (BROKER_SECRET, EVERYTHING_TOOLS, GATEWAY_KEY, MCP1_JSON_TOOLS, MCP1_PYTHON, MCP1_TOOLS,
                      MCP_INTERNAL_SECRET, MCP_TOOLS, NODE, ROOT, SECOND_KEY)

MODERN = "2026-07-28"
AUTH = {"authorization": f"Bearer {GATEWAY_KEY}"}


def client(url: str, mode: str) -> Client:
    http = httpx2.AsyncClient(headers=AUTH, timeout=httpx2.Timeout(30.0))
    return Client(streamable_http_client(url, http_client=http), mode=mode)


async def exercise(url: str, mode: str) -> dict:
    """Lists and calls tools, a prompt and a resource; returns what it saw."""
    progress = []

    async def on_progress(done, total, message):
        progress.append(done)

    async with client(url, mode) as c:
        seen = {"version": c.protocol_version}
        seen["tools"] = sorted(t.name for t in (await c.list_tools()).tools)
        seen["add"] = (await c.call_tool("add", {"a": 2, "b": 40})).content[0].text
        counted = await c.call_tool("slow_count", {"n": 3}, progress_callback=on_progress)
        seen["count"] = counted.content[0].text
        seen["progress"] = progress
        seen["prompt"] = (await c.get_prompt("greet", {"name": "Ada"})).messages[0].content.text
        seen["resource"] = (await c.read_resource("e2e://readme")).contents[0].text
        return seen


def mcp_url(gateway, slug: str, slash: bool = True) -> str:
    return f"{gateway.url}/mcp/{slug}{'/' if slash else ''}"


@pytest.mark.parametrize("slug", ["py", "py-json", "py-current", "py-legacy"])
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_each_client_era_works_against_each_server_mode(gateway, slug, mode):
    seen = asyncio.run(exercise(mcp_url(gateway, slug, slash=slug != "py-json"), mode))
    assert seen["tools"] == sorted(MCP_TOOLS)
    assert seen["add"] == "42"
    assert seen["count"] == "counted to 3"
    assert seen["prompt"] == "Please greet Ada warmly."
    assert seen["resource"] == "hello from the upstream"
    # The client speaks its own era to the gateway whatever the server's: the gateway bridges.
    assert (seen["version"] == MODERN) == (mode == "auto")
    if slug != "py-json":
        assert seen["progress"] == [1, 2, 3], "progress notifications stream through"


def post(gateway, slug: str, body: dict, headers: dict | None = None) -> httpx.Response:
    base = {"content-type": "application/json", "accept": "application/json, text/event-stream", **AUTH}
    if "params" in body and body.get("method") != "initialize":
        body["params"].setdefault("_meta", {
            "io.modelcontextprotocol/protocolVersion": MODERN,
            "io.modelcontextprotocol/clientCapabilities": {},
        })
        base.update({"mcp-protocol-version": MODERN, "mcp-method": body["method"]})
    return httpx.post(mcp_url(gateway, slug), json=body, headers={**base, **(headers or {})}, timeout=30)


def json_rpc(response: httpx.Response) -> dict:
    if response.headers.get("content-type", "").startswith("text/event-stream"):
        events = [json.loads(line[6:]) for line in response.text.splitlines() if line.startswith("data: ")]
        return next(e for e in events if "id" in e and ("result" in e or "error" in e))
    return response.json()


def test_a_tool_not_enabled_is_refused_and_never_reaches_the_server(gateway):
    call = {"jsonrpc": "2.0", "id": 7, "method": "tools/call", "params": {"name": "drop_tables", "arguments": {}}}
    refused = post(gateway, "py", call, {"mcp-name": "drop_tables"})
    assert refused.status_code == 403
    assert refused.json()["error"]["data"]["reason"] == "tool_not_enabled"
    # The body alone (no routing headers: a legacy-style request) is refused too, with its id.
    legacy = httpx.post(mcp_url(gateway, "py"), json=call, timeout=30,
                        headers={"content-type": "application/json", "accept": "application/json, text/event-stream", **AUTH})
    assert legacy.status_code == 403 and legacy.json()["id"] == 7
    listed = json_rpc(post(gateway, "py-all", {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))
    assert "drop_tables" in [t["name"] for t in listed["result"]["tools"]]
    called = post(gateway, "py-all", {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                      "params": {"name": "tool_calls", "arguments": {}}}, {"mcp-name": "tool_calls"})
    assert "drop_tables" not in json_rpc(called)["result"]["content"][0]["text"]


def test_tools_list_shows_only_enabled_tools(gateway):
    listed = json_rpc(post(gateway, "py", {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}))
    assert sorted(t["name"] for t in listed["result"]["tools"]) == sorted(MCP_TOOLS)


def test_a_routing_header_that_disagrees_with_the_body_is_a_400(gateway):
    call = {"jsonrpc": "2.0", "id": 3, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}
    response = post(gateway, "py", call, {"mcp-name": "slow_count"})
    assert response.status_code == 400
    assert response.json()["error"]["code"] == -32020
    response = post(gateway, "py", {"jsonrpc": "2.0", "id": 4, "method": "tools/list", "params": {}},
                    {"mcp-method": "prompts/list"})
    assert response.status_code == 400


@pytest.mark.parametrize("slug, status", [("nope", 404), ("off", 503)])
def test_unknown_and_disabled_servers_are_refused(gateway, slug, status):
    response = post(gateway, slug, {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}})
    assert response.status_code == status
    assert response.json()["error"]["message"]


def test_mcp_needs_the_gateway_key(gateway):
    response = httpx.post(mcp_url(gateway, "py"), json={"jsonrpc": "2.0", "id": 1, "method": "ping"},
                          headers={"accept": "application/json, text/event-stream"}, timeout=30)
    assert response.status_code == 401
    assert response.json()["jsonrpc"] == "2.0"


def test_a_legacy_handshake_is_answered_for_a_current_era_server_with_a_sealed_session(gateway):
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "raw", "version": "0"}}}
    response = post(gateway, "py-current", init)
    assert response.status_code == 200
    assert response.headers["x-gateway-mcp-bridge"] == "legacy-client;2026-07-28-server"
    assert response.json()["result"]["protocolVersion"] == "2025-06-18"
    assert response.json()["result"]["serverInfo"]["name"] == "e2e-upstream"
    session = response.headers["mcp-session-id"]
    legacy = {"mcp-session-id": session, "mcp-protocol-version": "2025-06-18"}
    listed = post(gateway, "py-current", {"jsonrpc": "2.0", "id": 2, "method": "tools/list"}, legacy)
    assert sorted(t["name"] for t in json_rpc(listed)["result"]["tools"]) == sorted(MCP_TOOLS)
    assert "ttlMs" not in json_rpc(listed)["result"], "current-era fields are removed for a legacy client"
    forged = {**legacy, "mcp-session-id": session[:-2] + ("00" if not session.endswith("00") else "11")}
    assert post(gateway, "py-current", {"jsonrpc": "2.0", "id": 3, "method": "tools/list"}, forged).status_code == 404
    assert post(gateway, "py-current", {"jsonrpc": "2.0", "id": 4, "method": "tools/list"}).status_code == 400
    stream = httpx.get(mcp_url(gateway, "py-current"), headers={**AUTH, **legacy, "accept": "text/event-stream"})
    assert stream.status_code == 405


def test_a_current_era_request_to_a_legacy_server_is_bridged(gateway):
    response = post(gateway, "py-legacy", {"jsonrpc": "2.0", "id": 1, "method": "server/discover", "params": {}})
    assert response.status_code == 200
    assert response.headers["x-gateway-mcp-bridge"] == "2026-07-28-client;legacy-server"
    result = response.json()["result"]
    assert result["supportedVersions"] == [MODERN] and result["resultType"] == "complete"
    assert result["_meta"]["io.modelcontextprotocol/serverInfo"]["name"] == "e2e-upstream"
    called = post(gateway, "py-legacy", {"jsonrpc": "2.0", "id": 2, "method": "tools/call",
                                         "params": {"name": "add", "arguments": {"a": 1, "b": 2}}}, {"mcp-name": "add"})
    assert json_rpc(called)["result"]["content"][0]["text"] == "3"
    assert json_rpc(called)["result"]["resultType"] == "complete"


async def confirm(url: str, mode: str) -> str:
    asked = []

    async def on_elicit(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    http = httpx2.AsyncClient(headers=AUTH, timeout=httpx2.Timeout(30.0))
    async with Client(streamable_http_client(url, http_client=http), mode=mode, elicitation_callback=on_elicit) as c:
        result = await c.call_tool("confirm_action", {})
        assert asked == ["Proceed with the action?"]
        return result.content[0].text


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_tool_that_asks_the_user_works_in_each_era(gateway, mode):
    """Current era: the multi-round-trip result and its follow-up request pass through (and the
    follow-up is checked like any call). Legacy: the server's elicitation request comes over the
    event stream and the client's answer is forwarded in the same session."""
    assert asyncio.run(confirm(mcp_url(gateway, "py"), mode)) == "confirmed"


@pytest.mark.parametrize("slug, mode", [("py-legacy", "auto"), ("py-current", "legacy")])
def test_asking_the_user_across_a_bridge_fails_cleanly(gateway, slug, mode):
    """Across eras the question cannot be carried statelessly: the call fails with an error the
    client reads, it never hangs."""
    with pytest.raises(BaseException) as err:
        asyncio.run(confirm(mcp_url(gateway, slug), mode))
    expected = "cannot answer server requests" if mode == "auto" else "cannot relay"
    if isinstance(err.value, BaseExceptionGroup):
        assert err.group_contains(MCPError, match=expected, depth=None)
    else:
        assert isinstance(err.value, MCPError) and expected in str(err.value)


async def everything(url: str, mode: str) -> dict:
    progress = []

    async def on_progress(done, total, message):
        progress.append(done)

    async with client(url, mode) as c:
        tools = sorted(t.name for t in (await c.list_tools()).tools)
        total = (await c.call_tool("get-sum", {"a": 2, "b": 40})).content[0].text
        await c.call_tool("trigger-long-running-operation", {"duration": 0.3, "steps": 3}, progress_callback=on_progress)
        return {"version": c.protocol_version, "tools": tools, "sum": total, "progress": progress}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_the_typescript_everything_server_serves_both_client_eras(gateway, mode):
    """A legacy-only server (TypeScript SDK): a current-era client's probe is refused upstream as a
    legacy server refuses it, and the gateway bridges from then on (`protocol: auto`)."""
    seen = asyncio.run(everything(mcp_url(gateway, "everything"), mode))
    assert seen["tools"] == sorted(EVERYTHING_TOOLS)
    assert "42" in seen["sum"]
    assert seen["progress"] == [1, 2, 3]
    assert (seen["version"] == MODERN) == (mode == "auto")


@pytest.mark.parametrize("slug, tool, args, expected", [
    ("py", "add", {"a": 20, "b": 22}, "42"),
    ("py-json", "add", {"a": 20, "b": 22}, "42"),
    ("py-current", "slow_count", {"n": 2}, "counted to 2"),
    ("py-legacy", "slow_count", {"n": 2}, "counted to 2"),
    ("py1", "slow_count", {"n": 2}, "counted to 2"),
    ("py1-json", "add", {"a": 1, "b": 2}, "3"),
    ("everything", "get-sum", {"a": 1, "b": 2}, "3"),
])
def test_the_typescript_sdk_client_works_through_the_gateway(gateway, slug, tool, args, expected):
    out = subprocess.run([str(NODE), str(ROOT / "tests" / "e2e" / "mcp" / "ts_client.mjs"), mcp_url(gateway, slug),
                          GATEWAY_KEY, tool, json.dumps(args)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert expected in seen["text"] and not seen["isError"]
    assert tool in seen["tools"] and "drop_tables" not in seen["tools"]
    if slug != "py1-json":  # a stateless server issues no session
        assert seen["session"], "the TypeScript client speaks the handshake era and holds a session"
    if tool == "slow_count":
        assert seen["progress"] == [1, 2]
    if slug.startswith("py"):
        assert seen["prompts"] == ["greet"]


@pytest.mark.parametrize("slug", ["py", "py-json", "py-current", "py-legacy", "py1", "py1-json", "everything"])
def test_the_python_sdk_1x_client_works_through_the_gateway(gateway, slug):
    """`mcp` 1.x speaks only the handshake era: passed through, or bridged to a current-era server."""
    extra = ["everything"] if slug == "everything" else []
    out = subprocess.run([str(MCP1_PYTHON), str(ROOT / "tests" / "e2e" / "mcp" / "legacy_client.py"),
                          mcp_url(gateway, slug), GATEWAY_KEY, *extra], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr[-3000:]
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    assert seen["protocol"] != MODERN
    assert "42" in seen["add"]
    if slug.endswith("json"):
        # JSON responses: no event stream for progress or for a server's question.
        assert seen["progress"] == [] and seen["count"] == "counted to 3"
        return
    assert seen["session"] and seen["progress"] == [1, 2, 3]
    if slug == "everything":
        return
    assert seen["count"] == "counted to 3"
    if slug == "py-current":
        # A current-era server asks through a multi-round-trip result: not relayable to a session.
        assert seen["confirmed"].startswith("error:") and "cannot relay" in seen["confirmed"]
    else:
        assert seen["confirmed"] == "confirmed" and seen["asked"] == ["Proceed with the action?"]


@pytest.mark.parametrize("slug", ["py1", "py1-json"])
@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_a_python_sdk_1x_server_serves_both_client_eras(gateway, slug, mode):
    async def run():
        async with client(mcp_url(gateway, slug), mode) as c:
            tools = sorted(t.name for t in (await c.list_tools()).tools)
            added = (await c.call_tool("add", {"a": 2, "b": 40})).content[0].text
            return c.protocol_version, tools, added

    version, tools, added = asyncio.run(run())
    assert tools == sorted(MCP1_TOOLS if slug == "py1" else MCP1_JSON_TOOLS) and added == "42"
    assert (version == MODERN) == (mode == "auto")


def within_ttl(ttl: float, check):
    """Runs `check`, whose assertions hold only while an entry it made `ttl` seconds ago is fresh:
    one that fails after `ttl` has passed is a slow machine, not a failure, and runs again."""
    import time

    for _ in range(3):
        started = time.monotonic()
        try:
            return check()
        except AssertionError:
            if time.monotonic() - started < ttl:
                raise
        # What the slow run stored expires before the next run starts from nothing.
        time.sleep(ttl + 0.2)
    pytest.fail(f"three runs each took longer than the {ttl} s they had")


def test_list_and_discover_results_are_cached_for_their_ttl_and_scope(gateway):
    """`tools/list` is public for 1.5 s, `server/discover` private: served from the edge within the
    TTL (with what is left of it), refetched after, and a private result never crosses principals."""
    import time

    within_ttl(1.5, lambda: lists_are_cached_in_scope(gateway))
    time.sleep(1.6)
    listing = {"jsonrpc": "2.0", "id": 5, "method": "tools/list", "params": {}}
    assert post(gateway, "py-cached", listing).headers["x-gateway-cache"] == "miss"


def lists_are_cached_in_scope(gateway):
    listing = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    first = post(gateway, "py-cached", dict(listing, params={}))
    assert first.headers["x-gateway-cache"] == "miss"
    second = post(gateway, "py-cached", dict(listing, id=2, params={}))
    assert second.headers["x-gateway-cache"] == "hit"
    assert second.json()["id"] == 2 and 0 < second.json()["result"]["ttlMs"] <= 1500
    assert sorted(t["name"] for t in second.json()["result"]["tools"]) == sorted(MCP_TOOLS)
    other = post(gateway, "py-cached", dict(listing, id=3, params={}), {"authorization": f"Bearer {SECOND_KEY}"})
    assert other.headers["x-gateway-cache"] == "hit", "public results are shared across principals"
    discover = {"jsonrpc": "2.0", "id": 4, "method": "server/discover", "params": {}}
    assert post(gateway, "py-cached", dict(discover, params={})).headers["x-gateway-cache"] == "miss"
    assert post(gateway, "py-cached", dict(discover, params={})).headers["x-gateway-cache"] == "hit"
    second_principal = post(gateway, "py-cached", dict(discover, params={}), {"authorization": f"Bearer {SECOND_KEY}"})
    assert second_principal.headers["x-gateway-cache"] == "miss", "private results stay with their principal"


def test_mcp_exchanges_are_audited_in_the_log_without_secrets(gateway):
    import time

    call = {"jsonrpc": "2.0", "id": 11, "method": "tools/call",
            "params": {"name": "add", "arguments": {"a": 1, "b": 2, "token": "sk-audit-should-not-appear"}}}
    allowed = post(gateway, "py", call, {"mcp-name": "add"}).headers["x-trace-id"]
    refused = post(gateway, "py", {"jsonrpc": "2.0", "id": 12, "method": "tools/call",
                                   "params": {"name": "drop_tables", "arguments": {}}},
                   {"mcp-name": "drop_tables"}).headers["x-trace-id"]

    def audit_of(trace_id: str) -> str:
        # This test's own records, by their trace ids (other tests audit the same server).
        marker = f'"trace_id":"{trace_id}"'
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            lines = [line for line in gateway.log().splitlines() if '"msg":"audit"' in line and marker in line]
            if lines:
                return lines[0]
            time.sleep(0.1)
        raise AssertionError(f"no audit record for {trace_id}")

    assert "mcp py tools/call add: allowed (200)" in audit_of(allowed)
    assert "mcp py tools/call drop_tables: refused: tool_not_enabled (403)" in audit_of(refused)
    log = gateway.log()
    for secret in ("sk-audit-should-not-appear", GATEWAY_KEY):
        assert secret not in log


def seen_by_server(mcp_upstreams) -> list[dict]:
    return httpx.get(f"{mcp_upstreams['recorded']}/_seen").json()


def test_internal_credential_reaches_the_server_and_the_clients_never_does(gateway, mcp_upstreams):
    httpx.post(f"{mcp_upstreams['recorded']}/_reset")
    seen = asyncio.run(exercise(mcp_url(gateway, "py-internal"), "auto"))
    assert seen["add"] == "42"
    headers = seen_by_server(mcp_upstreams)
    assert headers and all(h.get("authorization") == f"Bearer {MCP_INTERNAL_SECRET}" for h in headers)
    assert not any(GATEWAY_KEY in json.dumps(h) for h in headers)


def test_a_brokered_token_is_attached_cached_and_refused_when_the_principal_has_none(gateway, mcp_upstreams, receiver):
    import time

    call = {"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "add", "arguments": {"a": 1, "b": 1}}}

    def cached_while_valid():
        httpx.post(f"{mcp_upstreams['recorded']}/_reset")
        receiver.reset()
        for _ in range(2):
            reply = post(gateway, "py-brokered", dict(call, params=dict(call["params"])), {"mcp-name": "add"})
            assert json_rpc(reply)["result"]
        asked = [r for r in receiver.received()["upstream_requests"] if r["path"] == "/broker/token"]
        assert len(asked) == 1, "the token is cached while valid"
        return asked

    # The 7 s token is used until 5 s before it ends: both calls within those 2 s share it.
    asked = within_ttl(2, cached_while_valid)
    assert asked[0]["body"]["principal"]["id"] == "e2e" and asked[0]["body"]["server"] == "py-brokered"
    broker_headers = [h for h in receiver.received()["upstream_headers"] if h.get("authorization", "").endswith(BROKER_SECRET)]
    assert broker_headers, "the broker gets the gateway's own secret"
    assert all(h.get("authorization") == "Bearer brokered-token-for-e2e" for h in seen_by_server(mcp_upstreams))
    time.sleep(2.1)  # the 7 s token is past its validity less the 5 s margin
    post(gateway, "py-brokered", dict(call, params=dict(call["params"])), {"mcp-name": "add"})
    assert len([r for r in receiver.received()["upstream_requests"] if r["path"] == "/broker/token"]) == 2
    other = post(gateway, "py-brokered", dict(call, params=dict(call["params"])),
                 {"mcp-name": "add", "authorization": f"Bearer {SECOND_KEY}"})
    assert other.status_code == 403
    assert other.json()["error"]["data"]["reason"] == "downstream_auth_required"
    down = post(gateway, "py-broker-down", dict(call, params=dict(call["params"])), {"mcp-name": "add"})
    assert down.status_code == 502
    log = gateway.log()
    for secret in ("brokered-token-for-e2e", BROKER_SECRET, MCP_INTERNAL_SECRET):
        assert secret not in log
