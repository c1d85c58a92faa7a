"""A small OAuth 2.1 authorization server for the e2e suite: metadata (RFC 8414, with RFC 9207
`iss` in authorization responses), dynamic client registration, an authorization endpoint that
approves at once, PKCE (S256) at the token endpoint, and introspection for the protected server.

  python auth_server.py      prints `READY http://127.0.0.1:PORT` (the issuer)
  GET /_issued               the tokens issued so far, with the resource each was asked for
  GET /_expire?token=T       ends a token's validity (introspection then calls it inactive)
"""
import base64
import hashlib
import json
import secrets
import threading
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

lock = threading.Lock()
codes: dict[str, dict] = {}
tokens: dict[str, dict] = {}
issuer = ""


class AuthServer(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _json(self, status: int, payload) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _form(self) -> dict:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length).decode() if length else ""
        if self.headers.get("content-type", "").startswith("application/json"):
            return json.loads(raw or "{}")
        return {k: v[0] for k, v in urllib.parse.parse_qs(raw).items()}

    def do_GET(self):
        url = urllib.parse.urlsplit(self.path)
        query = {k: v[0] for k, v in urllib.parse.parse_qs(url.query).items()}
        if url.path.startswith("/.well-known/"):
            return self._json(200, {
                "issuer": issuer,
                "authorization_endpoint": f"{issuer}/authorize",
                "token_endpoint": f"{issuer}/token",
                "registration_endpoint": f"{issuer}/register",
                "introspection_endpoint": f"{issuer}/introspect",
                "response_types_supported": ["code"],
                "grant_types_supported": ["authorization_code", "refresh_token"],
                "code_challenge_methods_supported": ["S256"],
                "token_endpoint_auth_methods_supported": ["none"],
                "authorization_response_iss_parameter_supported": True,
            })
        if url.path == "/authorize":
            code = secrets.token_urlsafe(16)
            with lock:
                codes[code] = {"challenge": query.get("code_challenge"), "resource": query.get("resource"),
                               "redirect_uri": query.get("redirect_uri")}
            params = {"code": code, "iss": issuer}
            if "state" in query:
                params["state"] = query["state"]
            self.send_response(302)
            self.send_header("location", f"{query['redirect_uri']}?{urllib.parse.urlencode(params)}")
            self.send_header("content-length", "0")
            self.end_headers()
            return
        if url.path == "/introspect":
            with lock:
                grant = tokens.get(query.get("token", ""))
            return self._json(200, {"active": grant is not None, **({"aud": grant["resource"]} if grant else {})})
        if url.path == "/_expire":
            with lock:
                tokens.pop(query.get("token", ""), None)
            return self._json(200, {})
        if url.path == "/_issued":
            with lock:
                return self._json(200, list(tokens.values()))
        self._json(404, {})

    def do_POST(self):
        form = self._form()
        if self.path == "/register":
            return self._json(201, {**form, "client_id": "client-" + secrets.token_hex(4)})
        if self.path == "/token":
            with lock:
                grant = codes.pop(form.get("code", ""), None)
            verifier = form.get("code_verifier", "")
            digest = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
            if grant is None or grant["challenge"] != digest:
                return self._json(400, {"error": "invalid_grant"})
            token = "at-" + secrets.token_urlsafe(16)
            with lock:
                tokens[token] = {"token": token, "resource": form.get("resource") or grant["resource"]}
            return self._json(200, {"access_token": token, "token_type": "Bearer", "expires_in": 3600})
        self._json(404, {})


if __name__ == "__main__":
    server = ThreadingHTTPServer(("127.0.0.1", 0), AuthServer)
    issuer = f"http://127.0.0.1:{server.server_address[1]}"
    print(f"READY {issuer}", flush=True)
    server.serve_forever()
