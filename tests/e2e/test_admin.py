"""The admin API and `scripts/config` end to end, on both targets: the configuration document is
stored in each platform's KV store, validated in full before it is (Cedar policies included), read
back without secrets, kept in a history and rolled back; a refused document changes nothing."""

from __future__ import annotations

import copy
import json
import os
import subprocess

import httpx
import pytest

from conftest import (ADMIN_KEY, ANTHROPIC_SECRET, GATEWAY_KEY, OPENAI_SECRET, ROOT, TARGETS, gateway_config,
                      running_gateway)

# Shaped like a GitHub token: pasted into a header value by mistake, it must not come back out.
PASTED_TOKEN = "ghp_" + "aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5"


@pytest.fixture(scope="module", params=TARGETS)
def admin(request, llmock, receiver_server, tmp_path_factory):
    workdir = tmp_path_factory.mktemp(f"admin-{request.param}")
    config = gateway_config(llmock.url, receiver_server.url)
    with running_gateway(request.param, config, workdir) as gw:
        gw.document = config
        yield gw


def call(gateway, method: str, path: str, key: str | None = ADMIN_KEY, headers: dict | None = None,
         **kwargs) -> httpx.Response:
    sent = dict(headers or {})
    if key:
        sent["authorization"] = f"Bearer {key}"
    return httpx.request(method, f"{gateway.url}{path}", headers=sent, timeout=30, **kwargs)


def chat(gateway, model: str) -> httpx.Response:
    return httpx.post(f"{gateway.url}/v1/chat/completions", headers={"authorization": f"Bearer {GATEWAY_KEY}"},
                      json={"model": model, "messages": [{"role": "user", "content": "hi"}]}, timeout=30)


def with_route(document: dict, name: str) -> dict:
    changed = copy.deepcopy(document)
    changed["routes"][name] = {"models": ["demo/echo-1"]}
    return changed


def test_the_admin_api_wants_the_admin_key(admin):
    assert call(admin, "GET", "/admin/config", key=None).status_code == 401
    wrong = call(admin, "GET", "/admin/config", key="sk-not-the-admin-key")
    assert wrong.status_code == 401
    assert wrong.json()["error"]["message"] == "invalid admin key"
    # The gateway's own keys are not admin keys.
    assert call(admin, "PUT", "/admin/config", key=GATEWAY_KEY, json=admin.document).status_code == 401
    assert call(admin, "GET", "/admin/nothing").status_code == 404
    assert call(admin, "DELETE", "/admin/config").status_code == 405


def test_a_refused_document_changes_nothing(admin):
    before = call(admin, "GET", "/admin/config/history").json()
    broken = with_route(admin.document, "never")
    broken["routes"]["never"]["modles"] = []
    refused = call(admin, "PUT", "/admin/config", json=broken)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "invalid_config"
    assert refused.json()["error"]["param"] == "routes.never.modles"
    bad_policy = with_route(admin.document, "never")
    bad_policy["routes"]["never"]["policies"] = [
        {"id": "typo", "cedar": 'forbid(principal, action == Gateway::Action::"process_prompt", resource)\n'
                                'when { context.no_such_signal > 3 };'}]
    refused = call(admin, "PUT", "/admin/config", json=bad_policy)
    assert refused.status_code == 400
    assert "typo" in refused.json()["error"]["message"]
    assert call(admin, "PUT", "/admin/config", content=b"{not json").status_code == 400
    assert call(admin, "GET", "/admin/config/history").json() == before
    assert chat(admin, "never").status_code == 404
    assert chat(admin, "demo/echo-1").status_code == 200, "the last good document keeps serving"


def test_validate_is_a_dry_run(admin):
    checked = call(admin, "POST", "/admin/config/validate", json=with_route(admin.document, "dry"))
    assert checked.status_code == 200
    assert checked.json()["valid"] is True
    assert chat(admin, "dry").status_code == 404


def test_a_pushed_document_serves_at_once_and_reads_back_without_secrets(admin):
    pushed = with_route(admin.document, "pushed")
    pushed["providers"]["openai"]["headers"] = {"x-pasted": PASTED_TOKEN}
    stored = call(admin, "PUT", "/admin/config", json=pushed)
    assert stored.status_code == 200, stored.text
    version = stored.json()["version"]
    assert stored.headers["etag"] == f'"v{version}"'
    assert chat(admin, "pushed").status_code == 200
    read = call(admin, "GET", "/admin/config")
    assert read.status_code == 200
    assert read.headers["etag"] == f'"v{version}"'
    assert "pushed" in read.json()["routes"]
    text = read.text
    for secret in (PASTED_TOKEN, OPENAI_SECRET, ANTHROPIC_SECRET, ADMIN_KEY):
        assert secret not in text
    assert "[REDACTED" in read.json()["providers"]["openai"]["headers"]["x-pasted"]
    # A stale ETag is refused: someone else pushed in between.
    stale = call(admin, "PUT", "/admin/config", json=pushed, headers={"if-match": '"v0"'})
    assert stale.status_code == 412
    assert stale.json()["error"]["code"] == "version_mismatch"


def test_history_and_rollback(admin):
    first = call(admin, "PUT", "/admin/config", json=with_route(admin.document, "first")).json()["version"]
    second = call(admin, "PUT", "/admin/config", json=with_route(admin.document, "second")).json()["version"]
    assert second == first + 1
    history = call(admin, "GET", "/admin/config/history").json()
    assert history["current"] == second
    assert [v["version"] for v in history["versions"]][:2] == [second, first]
    assert history["versions"][-1]["version"] == 0, "the document the gateway started with is version 0"
    assert chat(admin, "second").status_code == 200 and chat(admin, "first").status_code == 404
    rolled = call(admin, "POST", "/admin/config/rollback", json={"version": first})
    assert rolled.status_code == 200
    assert rolled.json()["rollback_of"] == first
    assert rolled.json()["version"] == second + 1
    assert chat(admin, "first").status_code == 200 and chat(admin, "second").status_code == 404
    assert call(admin, "POST", "/admin/config/rollback", json={"version": 999}).status_code == 404


def config_script(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(ROOT / "scripts" / "config"), *args], capture_output=True, text=True, timeout=60,
                          env=dict(os.environ, GATEWAY_ADMIN_KEY=ADMIN_KEY))


def test_scripts_config_pushes_through_the_admin_api(admin, tmp_path):
    good = tmp_path / "good.json"
    good.write_text(json.dumps(with_route(admin.document, "scripted")))
    pushed = config_script("push", str(good), "--target", "local", "--url", admin.url)
    assert pushed.returncode == 0, pushed.stderr
    assert json.loads(pushed.stdout)["version"] >= 1
    assert chat(admin, "scripted").status_code == 200
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"version": 2}))
    refused = config_script("push", str(bad), "--url", admin.url)
    assert refused.returncode == 1
    assert "invalid_config" in refused.stdout
    assert chat(admin, "scripted").status_code == 200
    history = config_script("history", "--url", admin.url)
    assert history.returncode == 0
    current = json.loads(history.stdout)["current"]
    assert config_script("rollback", str(current - 1), "--url", admin.url).returncode == 0
    assert chat(admin, "scripted").status_code == 404
