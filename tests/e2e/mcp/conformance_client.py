"""The client command for `@modelcontextprotocol/conformance client`: points the relay at the
scenario's server, then runs the official Python SDK client (legacy era, as the scenarios are)
through the gateway's /mcp/conformance/ as each scenario asks.

  python conformance_client.py <scenario server URL>
Environment: MCP_CONFORMANCE_SCENARIO (set by the framework), GATEWAY_MCP_URL, GATEWAY_KEY,
RELAY_URL (set by the e2e suite).
"""
import asyncio
import os
import sys

import httpx
import httpx2
from mcp.client import Client
from mcp.client.streamable_http import streamable_http_client
from mcp_types import ElicitResult

scenario = os.environ["MCP_CONFORMANCE_SCENARIO"]
httpx.put(f"{os.environ['RELAY_URL']}/_target", content=sys.argv[1]).raise_for_status()


async def defaults(context, params):
    """Accepts an elicitation with each field's default (SEP-1034)."""
    schema = params.requested_schema or {}
    content = {k: v["default"] for k, v in schema.get("properties", {}).items() if "default" in v}
    return ElicitResult(action="accept", content=content)


async def main() -> None:
    http = httpx2.AsyncClient(headers={"authorization": f"Bearer {os.environ['GATEWAY_KEY']}"},
                              timeout=httpx2.Timeout(30.0))
    transport = streamable_http_client(os.environ["GATEWAY_MCP_URL"], http_client=http)
    async with Client(transport, mode="legacy", elicitation_callback=defaults) as client:
        tools = (await client.list_tools()).tools
        if scenario == "tools_call":
            await client.call_tool("add_numbers", {"a": 5, "b": 3})
        elif scenario == "elicitation-sep1034-client-defaults":
            await client.call_tool("test_client_elicitation_defaults", {})
        elif scenario == "sse-retry":
            await client.call_tool("test_reconnection", {})
        print(f"{scenario}: {len(tools)} tools", flush=True)


asyncio.run(main())
