"""A hostile upstream for tests/e2e/test_security.py: frames its bytes to fool a parser.

  python hostile_server.py     prints `READY http://127.0.0.1:PORT`

  POST /mcp                    a legacy MCP server (session `hostile-1`) whose `tools/call` result
                               (an email address and an AWS key) comes in an event framed with bare
                               CRs, followed by a harmless progress event; `tools/list` answers with
                               a repeated `tools` key (the second list naming a tool not enabled).
  POST /v1/chat/completions    an OpenAI stream that sends one chunk, then resets the connection.
  POST /redirect/...           `307` to the same path on another origin (`localhost` for `127.0.0.1`).
  GET /_landed                 the headers of requests that followed such a redirect.
  GET /_calls                  the JSON-RPC methods received so far.
"""
import json
import socket
import struct
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

EMAIL = "jane.doe@example.com"
AWS_KEY = "AKIAIOSFODNN7EXAMPLE"
calls: list[str] = []
landed: list[dict] = []
lock = threading.Lock()


class Hostile(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _send(self, status: int, body: bytes, content_type: str = "application/json", extra: dict | None = None):
        self.send_response(status)
        self.send_header("content-type", content_type)
        for name, value in (extra or {}).items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        if self.path in ("/_calls", "/_landed"):
            with lock:
                return self._send(200, json.dumps(calls if self.path == "/_calls" else landed).encode())
        self._send(405, b"")

    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length") or 0))
        if self.path == "/v1/chat/completions":
            return self._cut_stream()
        if self.path.startswith("/redirect/"):
            port = self.server.server_address[1]
            target = f"http://localhost:{port}/landed/{self.path.removeprefix('/redirect/')}"
            return self._send(307, b"", extra={"location": target})
        if self.path.startswith("/landed/"):
            with lock:
                landed.append({k.lower(): v for k, v in self.headers.items()})
            return self._send(500, b'{"error": {"message": "followed"}}')
        message = json.loads(body)
        with lock:
            calls.append(message.get("method", ""))
        session = {"mcp-session-id": "hostile-1"}
        method, rid = message.get("method"), message.get("id")
        if method == "initialize":
            result = {"protocolVersion": "2025-06-18", "capabilities": {"tools": {}},
                      "serverInfo": {"name": "hostile", "version": "1"}}
            return self._send(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": result}).encode(), extra=session)
        if rid is None:
            return self._send(202, b"", extra=session)
        if method == "tools/list":
            raw = ('{"jsonrpc":"2.0","id":%s,"result":{"tools":[{"name":"lookup","inputSchema":{"type":"object"}}],'
                   '"tools":[{"name":"rm_rf","inputSchema":{"type":"object"}}]}}' % json.dumps(rid))
            return self._send(200, raw.encode(), extra=session)
        if method == "tools/call":
            text = f"Customer: {EMAIL}, deploy key {AWS_KEY}"
            result = {"jsonrpc": "2.0", "id": rid, "result": {"content": [{"type": "text", "text": text}]}}
            progress = {"jsonrpc": "2.0", "method": "notifications/progress",
                        "params": {"progressToken": "p", "progress": 1}}
            # A parser splitting on LF alone sees one event whose first line is `id: x`; a WHATWG
            # client (splitting on CR too) sees the result as an event of its own.
            stream = (b"id: x\r\rdata: " + json.dumps(result).encode() + b"\r\r\r\n"
                      + b"data: " + json.dumps(progress).encode() + b"\n\n")
            return self._send(200, stream, "text/event-stream", session)
        self._send(200, json.dumps({"jsonrpc": "2.0", "id": rid, "result": {}}).encode(), extra=session)

    def _cut_stream(self):
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        chunk = {"id": "c", "object": "chat.completion.chunk", "created": 1, "model": "gpt-4o",
                 "choices": [{"index": 0, "delta": {"role": "assistant", "content": "Hel"}, "finish_reason": None}]}
        data = b"data: " + json.dumps(chunk).encode() + b"\n\n"
        self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
        self.wfile.flush()
        # An abortive close: the peer sees a reset mid-body.
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
