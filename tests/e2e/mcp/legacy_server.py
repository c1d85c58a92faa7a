"""An MCP server on the Python SDK 1.x (legacy era only: initialize handshake and sessions).

  python legacy_server.py --port 8941 [--json] [--stateless]
Endpoint: http://127.0.0.1:PORT/mcp
"""
import argparse

from mcp.server.fastmcp import Context, FastMCP
from pydantic import BaseModel

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--json", action="store_true")
parser.add_argument("--stateless", action="store_true")
args = parser.parse_args()

server = FastMCP("e2e-legacy-upstream", host="127.0.0.1", port=args.port, streamable_http_path="/mcp",
                 json_response=args.json, stateless_http=args.stateless)


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


@server.tool()
async def slow_count(n: int, ctx: Context) -> str:
    """Count to n, reporting progress."""
    for i in range(n):
        await ctx.report_progress(i + 1, n)
    return f"counted to {n}"


class Confirmation(BaseModel):
    ok: bool


@server.tool()
async def confirm_action(ctx: Context) -> str:
    """Asks the user first, with a server-sent elicitation request."""
    answer = await ctx.elicit("Proceed with the action?", Confirmation)
    return "confirmed" if answer.action == "accept" and answer.data.ok else "declined"


@server.prompt()
def greet(name: str) -> str:
    """Greeting prompt."""
    return f"Please greet {name} warmly."


if __name__ == "__main__":
    server.run(transport="streamable-http")
