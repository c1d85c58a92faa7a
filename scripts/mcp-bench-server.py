"""The MCP server scripts/bench measures tools/call against: the official Python SDK, JSON
responses, one `add` tool. Prints `READY <url>` once it listens."""
import socket

from mcp.server.mcpserver import MCPServer

server = MCPServer("bench-upstream", version="1.0.0")


@server.tool()
def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


if __name__ == "__main__":
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    print(f"READY http://127.0.0.1:{port}", flush=True)
    server.run("streamable-http", host="127.0.0.1", port=port, streamable_http_path="/mcp", json_response=True)
