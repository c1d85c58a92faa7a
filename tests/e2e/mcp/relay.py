"""A transparent HTTP relay with a settable target, so a gateway configured once can front each
conformance scenario's server (each listens on a new port).

  python relay.py            prints `READY http://127.0.0.1:PORT`
  PUT /_target  body: URL    every other request is forwarded to URL (method, headers except
                             Host, body), its response streamed back as it arrives.
  GET /_seen                 the headers of the requests forwarded so far (and POST /_reset).
  python relay.py URL        starts with that target.
  python relay.py URL --front NAME=VALUE
                             a client's front: adds the header (a gateway key) and keeps the
                             client's Host, so the gateway judges the Host the client sent.
  python relay.py URL --protect ISSUER
                             an OAuth-protected MCP server: a request without a token the
                             issuer's introspection calls active is a 401 challenge, and the
                             relay serves its own protected-resource metadata.
"""
import json
import sys
import http.client
import threading
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HOP = {"connection", "keep-alive", "transfer-encoding", "host", "content-length", "te", "upgrade"}
args = sys.argv[1:]
protect = args[args.index("--protect") + 1] if "--protect" in args else None
front = args[args.index("--front") + 1].split("=", 1) if "--front" in args else None
state = {"target": args[0] if args and not args[0].startswith("--") else None, "seen": []}
lock = threading.Lock()


class Relay(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _body(self) -> bytes:
        length = int(self.headers.get("content-length") or 0)
        return self.rfile.read(length) if length else b""

    def _forward(self):
        body = self._body()
        if self.path in ("/_seen", "/_reset"):
            with lock:
                if self.path == "/_reset":
                    state["seen"].clear()
                data = json.dumps(state["seen"]).encode()
            self.send_response(200)
            self.send_header("content-type", "application/json")
            self.send_header("content-length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
            return
        with lock:
            state["seen"].append({k.lower(): v for k, v in self.headers.items()})
        if protect and self.path.startswith("/.well-known/oauth-protected-resource"):
            return self._reply(200, {"resource": f"{self.origin()}/mcp", "authorization_servers": [protect]})
        if protect and self.path != "/_target":
            token = self.headers.get("authorization", "").removeprefix("Bearer ")
            with urllib.request.urlopen(f"{protect}/introspect?token={urllib.parse.quote(token)}") as answer:
                active = json.loads(answer.read()).get("active")
            if not active:
                challenge = (f'Bearer error="invalid_token", '
                             f'resource_metadata="{self.origin()}/.well-known/oauth-protected-resource/mcp"')
                return self._reply(401, {"error": "invalid_token"}, {"www-authenticate": challenge})
        if self.path == "/_target":
            with lock:
                state["target"] = body.decode().strip()
            self.send_response(204)
            self.send_header("content-length", "0")
            self.end_headers()
            return
        with lock:
            target = state["target"]
        url = urllib.parse.urlsplit(target)
        conn = http.client.HTTPConnection(url.hostname, url.port, timeout=60)
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP}
        if front:
            headers[front[0]] = front[1]
            conn.putrequest(self.command, url.path or "/", skip_host=True)
            conn.putheader("Host", self.headers.get("host", ""))
            for name, value in headers.items():
                conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
        else:
            conn.request(self.command, url.path or "/", body=body or None, headers=headers)
        response = conn.getresponse()
        self.send_response(response.status)
        for name, value in response.getheaders():
            if name.lower() not in HOP:
                self.send_header(name, value)
        self.send_header("transfer-encoding", "chunked")
        self.end_headers()
        while True:
            chunk = response.read1(65536)
            if not chunk:
                break
            self.wfile.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.wfile.flush()
        conn.close()

    def origin(self) -> str:
        return f"http://{self.headers.get('host')}"

    def _reply(self, status: int, payload, headers: dict | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        for name, value in {"content-type": "application/json", **(headers or {})}.items():
            self.send_header(name, value)
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_DELETE = do_PUT = _forward


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), Relay)
    print(f"READY http://127.0.0.1:{server.server_address[1]}", flush=True)
    server.serve_forever()
