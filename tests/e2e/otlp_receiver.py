"""A small OTLP/HTTP JSON receiver for the tests, which also plays an OpenAI-compatible upstream
that records the headers it receives (llmock's journal keeps bodies, not headers).

  POST /v1/traces, /v1/logs   store an OTLP export request: spans, or audit log records (mode ok | slow | down)
  POST .../chat/completions   answer a fixed completion, record the path, headers and body
  POST /api/chat              Ollama's native chat (NDJSON when streaming)
  POST /api/embed, ...:batchEmbedContents   Ollama's and Gemini's embeddings
  POST .../audio/speech       stream three chunks of "audio"
  POST .../moderations        answer a fixed moderation result
  GET  /_received             {"traces": [...], "upstream_headers": [...], "upstream_requests": [...]}
  POST /guard                 a remote guard service: `deny` when the content holds REMOTE-DENY,
                              else `allow` with a toxicity signal (guard mode ok | slow | down)
  POST /_mode                 {"mode": "ok" | "slow" | "down"} (and {"guard": ...} for /guard;
                              {"guard_deny": ["response", ...]} denies every question at those content types)
  POST /_reset
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

COMPLETION = {
    "id": "chatcmpl-recorder", "object": "chat.completion", "created": 1, "model": "recorder-1",
    "choices": [{"index": 0, "message": {"role": "assistant", "content": "recorded"}, "finish_reason": "stop"}],
    # DeepSeek-style cache counters, which the gateway maps to prompt_tokens_details.cached_tokens.
    "usage": {"prompt_tokens": 4, "completion_tokens": 1, "total_tokens": 5, "prompt_cache_hit_tokens": 3},
}
SLOW_SECONDS = 3.0
# A slow guard service answers long after any client would give up on the gateway.
GUARD_SLOW_SECONDS = 30.0


class State:
    def __init__(self):
        self.lock = threading.Lock()
        self.traces: list[dict] = []
        self.upstream_headers: list[dict] = []
        self.upstream_requests: list[dict] = []
        self.mode = "ok"
        self.guard_mode = "ok"
        # Content types at which the guard denies whatever it is asked (`_mode` {"guard_deny": [...]}).
        self.guard_deny: list[str] = []


class Handler(BaseHTTPRequestHandler):
    state: State
    protocol_version = "HTTP/1.1"  # chunked responses need it

    def log_message(self, *args):  # quiet
        pass

    def _body(self) -> bytes:
        if self.headers.get("transfer-encoding", "").lower() == "chunked":
            data = b""
            while True:
                size = int(self.rfile.readline().split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    self.rfile.readline()
                    return data
                data += self.rfile.read(size)
                self.rfile.readline()
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _upload(self, body: bytes) -> None:
        """An audio upload: records the form's fields and a digest of its file, answers its size."""
        boundary = self.headers.get("content-type", "").split("boundary=")[-1].strip('"').encode()
        fields, file_info = {}, None
        for part in body.split(b"--" + boundary)[1:]:
            if part.startswith(b"--"):
                break
            head, _, value = part.removeprefix(b"\r\n").partition(b"\r\n\r\n")
            value = value.removesuffix(b"\r\n")
            name = head.split(b'name="')[1].split(b'"')[0].decode()
            if b"filename=" in head:
                file_info = {"name": name, "size": len(value), "sha256": hashlib.sha256(value).hexdigest()}
            else:
                fields[name] = value.decode()
        with self.state.lock:
            self.state.upstream_headers.append({k.lower(): v for k, v in self.headers.items()})
            self.state.upstream_requests.append({"path": self.path, "body": {"fields": fields, "file": file_info,
                                                                            "length": len(body)}})
        return self._json(200, {"text": f"{file_info['size'] if file_info else 0} bytes heard"})

    def _json(self, status: int, payload: dict) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _chat_stream(self, request: dict) -> None:
        """The fixed completion as OpenAI chunks, usage last when asked for."""
        base = {"id": "chatcmpl-recorder", "object": "chat.completion.chunk", "created": 1, "model": "recorder-1"}
        events = [dict(base, choices=[{"index": 0, "delta": {"role": "assistant", "content": "rec"}, "finish_reason": None}]),
                  dict(base, choices=[{"index": 0, "delta": {"content": "orded"}, "finish_reason": "stop"}])]
        if (request.get("stream_options") or {}).get("include_usage"):
            events.append(dict(base, choices=[], usage=COMPLETION["usage"]))
        self.send_response(200)
        self.send_header("content-type", "text/event-stream")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        for data in [f"data: {json.dumps(e)}\n\n" for e in events] + ["data: [DONE]\n\n"]:
            raw = data.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(raw), raw))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def _ollama_chat(self, request: dict) -> None:
        """Ollama's native /api/chat: a tool call when tools are offered and the last message is
        the user's, else an answer; NDJSON lines when streaming (the default)."""
        with self.state.lock:
            self.state.upstream_requests.append({"path": self.path, "body": request})
        model = request.get("model", "")
        last = (request.get("messages") or [{}])[-1]
        if request.get("tools") and last.get("role") == "user":
            name = request["tools"][0]["function"]["name"]
            pieces = [{"role": "assistant", "content": "", "tool_calls": [{"function": {"name": name, "arguments": {"city": "Paris"}}}]}]
        else:
            pieces = [{"role": "assistant", "content": word} for word in ("Hello", " from", " Ollama")]
        final = {"model": model, "message": {"role": "assistant", "content": ""}, "done": True, "done_reason": "stop",
                 "prompt_eval_count": 11, "eval_count": 3}
        if not request.get("stream", True):
            content = "".join(p["content"] for p in pieces)
            message = {"role": "assistant", "content": content}
            if "tool_calls" in pieces[0]:
                message["tool_calls"] = pieces[0]["tool_calls"]
            return self._json(200, dict(final, message=message))
        self.send_response(200)
        self.send_header("content-type", "application/x-ndjson")
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        lines = [json.dumps({"model": model, "message": p, "done": False}) + "\n" for p in pieces]
        lines.append(json.dumps(final) + "\n")
        for line in lines:
            data = line.encode()
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")

    def do_GET(self):
        if self.path == "/_received":
            with self.state.lock:
                return self._json(200, {"traces": self.state.traces, "upstream_headers": self.state.upstream_headers,
                                        "upstream_requests": self.state.upstream_requests})
        self._json(404, {})

    def do_POST(self):
        body = self._body()
        if self.path in ("/v1/traces", "/v1/logs"):
            mode = self.state.mode
            if mode == "down":
                self.close_connection = True
                self.connection.shutdown(2)
                return
            if mode == "slow":
                time.sleep(SLOW_SECONDS)
            with self.state.lock:
                self.state.traces.append({"headers": {k.lower(): v for k, v in self.headers.items()}, "raw": body.decode(errors="replace"),
                                          "body": json.loads(body or b"{}")})
            return self._json(200, {})
        if self.path.split("?")[0].endswith("/chat/completions"):
            request = json.loads(body or b"{}")
            with self.state.lock:
                self.state.upstream_headers.append({k.lower(): v for k, v in self.headers.items()})
                self.state.upstream_requests.append({"path": self.path, "body": request})
            if request.get("stream"):
                return self._chat_stream(request)
            return self._json(200, COMPLETION)
        if self.path == "/api/chat":
            return self._ollama_chat(json.loads(body or b"{}"))
        if self.path.split("?")[0].endswith(("/audio/transcriptions", "/audio/translations")):
            return self._upload(body)
        if self.path == "/broker/token":
            # The MCP token broker: a short-lived token for principal `e2e`, none for anyone else.
            request = json.loads(body or b"{}")
            with self.state.lock:
                self.state.upstream_headers.append({k.lower(): v for k, v in self.headers.items()})
                self.state.upstream_requests.append({"path": self.path, "body": request})
            if request.get("principal", {}).get("id") == "e2e":
                return self._json(200, {"access_token": "brokered-token-for-e2e", "token_type": "Bearer", "expires_in": 7})
            return self._json(404, {"error": "no_token", "authorization_url": "https://idp.example/authorize"})
        if self.path == "/proprietary/generate":
            # A non-OpenAI API for custom routes: its own request and answer shapes.
            request = json.loads(body or b"{}")
            with self.state.lock:
                self.state.upstream_headers.append({k.lower(): v for k, v in self.headers.items()})
                self.state.upstream_requests.append({"path": self.path, "body": request})
            question = request.get("input", {}).get("question", "")
            return self._json(200, {"result": {"text": f"You asked: {question}", "why": "max_len"},
                                    "meter": {"in": 11, "out": 4}})
        if self.path == "/api/embed" or self.path.endswith(":batchEmbedContents"):
            request = json.loads(body or b"{}")
            with self.state.lock:
                self.state.upstream_requests.append({"path": self.path, "body": request})
            if self.path == "/api/embed":
                return self._json(200, {"model": request["model"], "prompt_eval_count": 2,
                                        "embeddings": [[0.1, 0.2, 0.3] for _ in request["input"]]})
            return self._json(200, {"embeddings": [{"values": [0.4, 0.5]} for _ in request["requests"]]})
        if self.path.endswith("/audio/speech"):
            self.send_response(200)
            self.send_header("content-type", "audio/mpeg")
            self.send_header("transfer-encoding", "chunked")
            self.end_headers()
            for piece in (b"ID3", b"\x00\x01\x02", b"tail"):
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                time.sleep(0.05)
            self.wfile.write(b"0\r\n\r\n")
            return
        if self.path.endswith("/moderations"):
            with self.state.lock:
                self.state.upstream_requests.append({"path": self.path, "body": json.loads(body or b"{}")})
            return self._json(200, {"id": "modr-1", "model": "omni-moderation-latest", "results": [
                {"flagged": False, "categories": {"violence": False}, "category_scores": {"violence": 0.01}}]})
        if self.path == "/guard":
            request = json.loads(body or b"{}")
            with self.state.lock:
                self.state.upstream_headers.append({k.lower(): v for k, v in self.headers.items()})
                self.state.upstream_requests.append({"path": self.path, "body": request})
            if self.state.guard_mode == "down":
                return self._json(503, {"error": "guard service down"})
            if self.state.guard_mode == "slow":
                time.sleep(GUARD_SLOW_SECONDS)
            if "REMOTE-DENY" in request.get("content", "") or request.get("content_type") in self.state.guard_deny:
                return self._json(200, {"decision": "deny", "signals": [{"name": "toxicity", "score": 97}],
                                        "reason": "toxic"})
            return self._json(200, {"decision": "allow", "signals": [{"name": "toxicity", "score": 12}]})
        if self.path == "/_mode":
            settings = json.loads(body)
            self.state.mode = settings.get("mode", self.state.mode)
            self.state.guard_mode = settings.get("guard", self.state.guard_mode)
            self.state.guard_deny = settings.get("guard_deny", self.state.guard_deny)
            return self._json(200, {})
        if self.path == "/_reset":
            with self.state.lock:
                self.state.traces.clear()
                self.state.upstream_headers.clear()
                self.state.upstream_requests.clear()
                self.state.mode = "ok"
                self.state.guard_mode = "ok"
                self.state.guard_deny = []
            return self._json(200, {})
        self._json(404, {})


def serve(port: int = 0) -> tuple[ThreadingHTTPServer, int]:
    handler = type("BoundHandler", (Handler,), {"state": State()})
    server = ThreadingHTTPServer(("127.0.0.1", port), handler)
    server.daemon_threads = True
    # A client that hangs up mid-response (a cut stream, a shutdown) is part of the tests, not news.
    server.handle_error = lambda request, client_address: None
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, server.server_address[1]
