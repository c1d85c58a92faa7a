"""`@modelcontextprotocol/conformance` in client mode with the gateway in front of each scenario's
server: the framework starts the scenario's server, tests/e2e/mcp/conformance_client.py points the
relay (the registered upstream of /mcp/conformance/) at it and runs the official Python client
through the gateway; the framework's checks judge what reached its server."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from conftest import GATEWAY_KEY, NODE, ROOT

CLI = ROOT / "node_modules" / "@modelcontextprotocol" / "conformance" / "dist" / "index.js"
# Every client scenario of the package's 2025 eras that needs no OAuth (the auth scenarios belong
# to the credential-modes issue). The package holds no 2026-07-28 scenario.
SCENARIOS = ["initialize", "tools_call", "elicitation-sep1034-client-defaults", "sse-retry"]


@pytest.mark.parametrize("scenario", SCENARIOS)
def test_conformance_client_scenarios_pass_through_the_gateway(gateway, mcp_upstreams, scenario, tmp_path):
    client = f"{sys.executable} {ROOT / 'tests' / 'e2e' / 'mcp' / 'conformance_client.py'}"
    env = dict(os.environ, GATEWAY_MCP_URL=f"{gateway.url}/mcp/conformance/", GATEWAY_KEY=GATEWAY_KEY,
               RELAY_URL=mcp_upstreams["conformance"], PATH=f"{NODE.parent}:{os.environ['PATH']}")
    out = subprocess.run([str(NODE), str(CLI), "client", "--command", client, "--scenario", scenario,
                          "-o", str(tmp_path)], capture_output=True, text=True, timeout=120, env=env, cwd=tmp_path)
    checks = [c for f in tmp_path.rglob("checks.json") for c in json.loads(f.read_text())]
    failed = [c for c in checks if c.get("status") == "FAILURE"]
    assert out.returncode == 0 and checks and not failed, f"{out.stdout[-3000:]}\n{out.stderr[-2000:]}\n{failed}"
