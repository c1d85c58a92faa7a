"""The Python SDK 1.x client (legacy era only), driven by the e2e suite.

  python legacy_client.py <url> <gateway key> [everything]
Prints one JSON line with what it saw: session, protocol, tools, a call, progress, elicitation.
With `everything`, the calls are those of @modelcontextprotocol/server-everything.
"""
import asyncio
import json
import sys

from mcp import ClientSession
from mcp.client.streamable_http import streamablehttp_client
from mcp.shared.exceptions import McpError
from mcp.types import ElicitResult

url, key = sys.argv[1], sys.argv[2]
everything = sys.argv[3:] == ["everything"]
ADD = ("get-sum", {"a": 2, "b": 40}) if everything else ("add", {"a": 2, "b": 40})
COUNT = ("trigger-long-running-operation", {"duration": 0.3, "steps": 3}) if everything else ("slow_count", {"n": 3})


async def main() -> None:
    progress, asked = [], []

    async def on_progress(done, total, message):
        progress.append(done)

    async def on_elicit(context, params):
        asked.append(params.message)
        return ElicitResult(action="accept", content={"ok": True})

    async with streamablehttp_client(url, headers={"authorization": f"Bearer {key}"}) as (read, write, session_id):
        async with ClientSession(read, write, elicitation_callback=on_elicit) as session:
            init = await session.initialize()
            tools = sorted(t.name for t in (await session.list_tools()).tools)
            added = (await session.call_tool(*ADD)).content[0].text
            counted = (await session.call_tool(*COUNT, progress_callback=on_progress)).content[0].text
            confirmed = None
            if "confirm_action" in tools:
                try:
                    confirmed = (await session.call_tool("confirm_action", {})).content[0].text
                except McpError as error:
                    confirmed = f"error: {error}"
            print(json.dumps({"session": session_id(), "protocol": init.protocolVersion, "tools": tools, "add": added,
                              "count": counted, "progress": progress, "confirmed": confirmed, "asked": asked}))


asyncio.run(main())
