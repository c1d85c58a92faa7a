"""`oauth_passthrough` end to end: the official Python SDK's OAuth client discovers the gateway's
protected-resource metadata from its 401 challenge, registers with the test authorization server,
runs authorization code + PKCE, and calls tools through the gateway with its own token, which the
protected server (behind a relay) sees unchanged. On both targets."""

from __future__ import annotations

import asyncio
import urllib.parse

import httpx
import httpx2
from mcp.client import Client
from mcp.client.auth import OAuthClientProvider
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.auth import AuthorizationCodeResult, OAuthClientMetadata

from conftest import GATEWAY_KEY, MCP_TOOLS


class MemoryStorage:
    def __init__(self):
        self.tokens = None
        self.client = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client

    async def set_client_info(self, client_info):
        self.client = client_info


async def oauth_session(url: str) -> dict:
    redirect = {}

    async def follow(authorization_url: str) -> None:
        # The test authorization server approves at once: its redirect carries the code.
        answer = httpx.get(authorization_url, follow_redirects=False)
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(answer.headers["location"]).query)
        redirect.update({k: v[0] for k, v in query.items()})

    async def callback() -> AuthorizationCodeResult:
        return AuthorizationCodeResult(code=redirect["code"], state=redirect.get("state"), iss=redirect.get("iss"))

    storage = MemoryStorage()
    provider = OAuthClientProvider(
        server_url=url,
        client_metadata=OAuthClientMetadata(client_name="e2e", redirect_uris=["http://127.0.0.1:9/callback"],
                                            grant_types=["authorization_code", "refresh_token"],
                                            response_types=["code"], token_endpoint_auth_method="none"),
        storage=storage, redirect_handler=follow, callback_handler=callback)
    http = httpx2.AsyncClient(auth=provider, headers={"x-gateway-key": GATEWAY_KEY}, timeout=httpx2.Timeout(30.0))
    async with Client(streamable_http_client(url, http_client=http), mode="auto") as client:
        tools = sorted(t.name for t in (await client.list_tools()).tools)
        added = (await client.call_tool("add", {"a": 40, "b": 2})).content[0].text
    return {"tools": tools, "add": added, "token": storage.tokens.access_token, "iss": redirect.get("iss")}


def test_an_oauth_client_discovers_authorizes_and_calls_through_with_its_own_token(gateway, mcp_upstreams):
    url = f"{gateway.url}/mcp/py-oauth/"
    httpx.post(f"{mcp_upstreams['protected']}/_reset")
    seen = asyncio.run(oauth_session(url))
    assert seen["tools"] == sorted(MCP_TOOLS) and seen["add"] == "42"
    assert seen["iss"] == mcp_upstreams["issuer"], "RFC 9207: the issuer came back and the client checked it"
    # The token was minted for the gateway's resource (RFC 8707) and reached the server unchanged.
    issued = {t["token"]: t for t in httpx.get(f"{mcp_upstreams['issuer']}/_issued").json()}
    assert issued[seen["token"]]["resource"].rstrip("/") == url.rstrip("/")
    headers = httpx.get(f"{mcp_upstreams['protected']}/_seen").json()
    with_token = [h for h in headers if h.get("authorization") == f"Bearer {seen['token']}"]
    assert with_token and not any(GATEWAY_KEY in str(h) for h in headers)
    assert seen["token"] not in gateway.log(), "the client's token is never logged"
    # Once the token expires the server's challenge comes back, pointed at the gateway.
    httpx.get(f"{mcp_upstreams['issuer']}/_expire", params={"token": seen["token"]})
    expired = httpx.post(url, json={"jsonrpc": "2.0", "id": 9, "method": "tools/list", "params": {}},
                         headers={"content-type": "application/json", "accept": "application/json, text/event-stream",
                                  "x-gateway-key": GATEWAY_KEY, "authorization": f"Bearer {seen['token']}"})
    assert expired.status_code == 401
    assert "/.well-known/oauth-protected-resource/mcp/py-oauth/" in expired.headers["www-authenticate"]
    assert 'error="invalid_token"' in expired.headers["www-authenticate"]


def test_a_wrong_token_gets_the_servers_challenge_pointed_at_the_gateway(gateway, mcp_upstreams):
    url = f"{gateway.url}/mcp/py-oauth/"
    body = {"jsonrpc": "2.0", "id": 1, "method": "tools/list", "params": {}}
    common = {"content-type": "application/json", "accept": "application/json, text/event-stream"}
    no_token = httpx.post(url, json=body, headers={**common, "x-gateway-key": GATEWAY_KEY})
    assert no_token.status_code == 401
    metadata_url = f"{gateway.url}/.well-known/oauth-protected-resource/mcp/py-oauth/"
    assert no_token.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url}"'
    metadata = httpx.get(metadata_url).json()
    assert metadata["resource"] == url and metadata["authorization_servers"] == [mcp_upstreams["issuer"]]
    wrong = httpx.post(url, json=body, headers={**common, "x-gateway-key": GATEWAY_KEY, "authorization": "Bearer forged"})
    assert wrong.status_code == 401
    assert wrong.headers["www-authenticate"] == f'Bearer resource_metadata="{metadata_url}", error="invalid_token"'
    key_in_authorization = httpx.post(url, json=body, headers={**common, "authorization": f"Bearer {GATEWAY_KEY}"})
    assert key_in_authorization.status_code == 401
    # The gateway key never reaches the server, whichever header carried it.
    seen = httpx.get(f"{mcp_upstreams['protected']}/_seen").json()
    assert seen and not any(GATEWAY_KEY in str(h) for h in seen)
