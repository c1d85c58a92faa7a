"""`@modelcontextprotocol/conformance` in client mode with the gateway in front of each scenario's
server: the framework starts the scenario's server, tests/e2e/mcp/conformance_client.py points the
relay (the registered upstream of /mcp/conformance/) at it and runs the official Python client
through the gateway; the framework's checks judge what reached its server."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import httpx
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


def server_suite(url: str, out) -> dict[str, tuple[int, int]]:
    """The package's server suite against `url`: passed and failed checks per scenario."""
    env = dict(os.environ, PATH=f"{NODE.parent}:{os.environ['PATH']}")
    run = subprocess.run([str(NODE), str(CLI), "server", "--url", url, "-o", str(out)],
                         capture_output=True, text=True, timeout=300, env=env, cwd=out.parent)
    scores = {}
    for checks_file in out.rglob("checks.json"):
        scenario = re.sub(r"-\d{4}-\d{2}-\d{2}T.*$", "", checks_file.parent.name).removeprefix("server-")
        checks = json.loads(checks_file.read_text())
        scores[scenario] = (sum(c.get("status") == "SUCCESS" for c in checks),
                            sum(c.get("status") == "FAILURE" for c in checks))
    assert scores, f"the suite produced no results: {run.stdout[-2000:]}\n{run.stderr[-2000:]}"
    return scores


def test_conformance_server_suite_scores_through_the_gateway_what_it_scores_direct(gateway, mcp_upstreams, tmp_path):
    """`server-everything` is not the suite's reference server, so it fails some scenarios on its
    own; through `/mcp/everything-all/` it must fail no more and pass no fewer, and the gateway's
    own Host and Origin checks pass `dns-rebinding-protection` (which the server alone half fails).
    The suite reaches the gateway through a front that adds the gateway key and keeps its Host."""
    direct = server_suite(mcp_upstreams["everything"].replace("127.0.0.1", "localhost"), tmp_path / "direct")
    front = mcp_upstreams["front"]
    httpx.put(f"{front}/_target", content=f"{gateway.url}/mcp/everything-all/").raise_for_status()
    through = server_suite(front.replace("127.0.0.1", "localhost") + "/mcp", tmp_path / "gateway")
    assert through.pop("dns-rebinding-protection") == (2, 0)
    direct.pop("dns-rebinding-protection")
    assert through == direct
