//! The MCP proxy in-process against the fake host: registry refusals, what reaches the server
//! (and what never does), per-message inspection of event streams, and era bridging.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use bytes::Bytes;
use futures::executor::block_on;
use futures::StreamExt;
use gateway_core::auth::hash_key;
use gateway_core::host::Body;
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;
use serde_json::{json, Value};

const KEY: &str = "sk-gw-mcp";
const MODERN: &str = "2026-07-28";

fn host() -> Rc<FakeHost> {
    let config = json!({
        "version": 1,
        // Whole traces in the log: the tests read spans and audit records there.
        "telemetry": {"log_traces": true},
        "mcp_servers": {
            "docs": {"url": "http://mcp.test/mcp", "tools": ["search", "fetch"],
                     "credential": {"mode": "internal", "secret": "docs_token"}},
            "auto": {"url": "http://old.test/mcp", "tools": ["search"]},
            "current": {"url": "http://new.test/mcp", "tools": ["search"], "protocol": "2026-07-28"},
            "oauth": {"url": "http://secure.test/mcp", "tools": ["search"], "credential": {"mode": "oauth_passthrough"}},
            "oauth-pinned": {"url": "http://secure.test/mcp", "tools": ["search"], "credential": {"mode": "oauth_passthrough"},
                             "authorization_servers": ["https://idp.example"]},
            "brokered": {"url": "http://mcp.test/mcp", "tools": ["search"],
                         "credential": {"mode": "token_broker", "url": "http://broker.test/token", "secret": "broker_key"}},
            "off": {"url": "http://mcp.test/mcp", "status": "disabled"}
        },
        "keys": [{"sha256": hash_key(KEY), "principal": {"kind": "agent", "id": "bot"}}]
    });
    let mut host = FakeHost::with_config(&config.to_string());
    host.secrets.insert("docs_token".into(), "sk-docs-upstream".into());
    host.secrets.insert("broker_key".into(), "sk-broker-admin".into());
    Rc::new(host)
}

struct Reply {
    status: u16,
    headers: http::HeaderMap,
    body: String,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }
}

fn send(host: &Rc<FakeHost>, path: &str, body: Value, headers: &[(&str, &str)]) -> Reply {
    let mut request = http::Request::post(path)
        .header("authorization", format!("Bearer {KEY}"))
        .header("content-type", "application/json")
        .header("accept", "application/json, text/event-stream");
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::Full(Bytes::from(body.to_string()))).unwrap();
    block_on(async {
        let response = gateway_core::handle(Rc::clone(host), &ConfigCache::default(), request).await;
        let (parts, body) = response.into_parts();
        let body = match body {
            Body::Full(b) => b.to_vec(),
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(Ok(chunk)) = s.next().await {
                    out.extend_from_slice(&chunk);
                }
                out
            }
        };
        Reply { status: parts.status.as_u16(), headers: parts.headers, body: String::from_utf8(body).unwrap() }
    })
}

fn modern(method: &str, params: Value) -> Value {
    let mut params = params;
    params["_meta"] = json!({"io.modelcontextprotocol/protocolVersion": MODERN,
                             "io.modelcontextprotocol/clientCapabilities": {},
                             "io.modelcontextprotocol/clientInfo": {"name": "t", "version": "1"}});
    json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params})
}

fn modern_headers(method: &str) -> Vec<(&str, &str)> {
    vec![("mcp-protocol-version", MODERN), ("mcp-method", method)]
}

fn sent_body(host: &FakeHost, index: usize) -> Value {
    serde_json::from_slice(host.requests.borrow()[index].body()).unwrap()
}

#[test]
fn unknown_and_disabled_servers_are_refused_and_nothing_is_forwarded() {
    let host = host();
    let unknown = send(&host, "/mcp/nope/", modern("tools/list", json!({})), &modern_headers("tools/list"));
    assert_eq!(unknown.status, 404);
    assert_eq!(unknown.json()["error"]["code"], -32000);
    assert_eq!(send(&host, "/mcp/off", modern("tools/list", json!({})), &[]).status, 503);
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn a_tool_not_enabled_is_refused_from_its_headers_or_its_body_and_never_forwarded() {
    let host = host();
    let call = modern("tools/call", json!({"name": "delete_all", "arguments": {}}));
    let mut headers = modern_headers("tools/call");
    headers.push(("mcp-name", "delete_all"));
    let refused = send(&host, "/mcp/docs/", call.clone(), &headers);
    assert_eq!(refused.status, 403);
    assert_eq!(refused.json()["error"]["data"]["reason"], "tool_not_enabled");
    let by_body = send(&host, "/mcp/docs/", call, &[]);
    assert_eq!((by_body.status, by_body.json()["id"].as_i64()), (403, Some(1)));
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn routing_headers_that_disagree_with_the_body_are_a_400() {
    let host = host();
    let call = modern("tools/call", json!({"name": "search", "arguments": {}}));
    let mut headers = modern_headers("tools/call");
    headers.push(("mcp-name", "fetch"));
    let reply = send(&host, "/mcp/docs", call.clone(), &headers);
    assert_eq!((reply.status, reply.json()["error"]["code"].as_i64()), (400, Some(-32020)));
    let reply = send(&host, "/mcp/docs", call, &modern_headers("tools/list"));
    assert_eq!((reply.status, reply.json()["error"]["code"].as_i64()), (400, Some(-32020)));
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn the_server_gets_its_own_credential_never_the_gateway_key() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search"},{"name":"delete_all"}],"nextCursor":"p2","resultType":"complete"}}"#));
    let reply = send(&host, "/mcp/docs/", modern("tools/list", json!({})), &modern_headers("tools/list"));
    assert_eq!(reply.status, 200);
    assert_eq!(reply.json()["result"]["tools"], json!([{"name": "search"}]), "tools not enabled are not listed");
    assert_eq!(reply.headers["x-gateway-cache"], "miss");
    assert_eq!(reply.json()["result"]["nextCursor"], "p2", "pagination is kept");
    let requests = host.requests.borrow();
    let sent = &requests[0];
    assert_eq!(sent.uri(), "http://mcp.test/mcp");
    assert_eq!(sent.headers()["authorization"], "Bearer sk-docs-upstream");
    assert_eq!(sent.headers()["mcp-method"], "tools/list");
    assert!(sent.headers().get("host").is_none(), "the runtime sets the server's own Host");
    let body: Value = serde_json::from_slice(sent.body()).unwrap();
    let traceparent = sent.headers()["traceparent"].to_str().unwrap();
    assert_eq!(body["params"]["_meta"]["traceparent"], traceparent, "current era: trace context in _meta too");
    assert!(!format!("{:?}", sent.headers()).contains(KEY));
}

#[test]
fn each_message_of_an_event_stream_is_inspected_as_it_passes() {
    let host = host();
    let sse = "id: e1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n\
               id: e2\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"id\":1,\"result\":{\"tools\":[{\"name\":\"search\"},{\"name\":\"rm\"}]}}\n\n";
    host.answer(FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        body: Bytes::from(sse),
    });
    let reply = send(&host, "/mcp/docs/", modern("tools/list", json!({})), &modern_headers("tools/list"));
    assert_eq!(reply.headers["content-type"], "text/event-stream");
    assert!(reply
        .body
        .contains("id: e1\nevent: message\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\""));
    assert!(reply.body.contains("id: e2\n"), "event ids survive, for resumption");
    assert!(!reply.body.contains("\"rm\""), "the result inside the stream is filtered: {}", reply.body);
}

#[test]
fn auto_falls_back_to_the_handshake_for_a_legacy_server_and_remembers_it() {
    let host = host();
    host.answer(FakeAnswer::json(
        400,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Bad Request: Missing session ID"}}"#,
    ));
    host.answer(FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "application/json".into()), ("mcp-session-id", "s-1".into())],
        body: Bytes::from_static(br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"old","version":"1"}}}"#),
    });
    host.answer(FakeAnswer::Full { status: 202, headers: vec![], body: Bytes::new() });
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"search"}]}}"#));
    let reply = send(&host, "/mcp/auto/", modern("tools/list", json!({})), &modern_headers("tools/list"));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.headers["x-gateway-mcp-bridge"], "2026-07-28-client;legacy-server");
    assert_eq!(reply.json()["result"]["resultType"], "complete");
    assert_eq!(reply.json()["result"]["_meta"]["io.modelcontextprotocol/serverInfo"]["name"], "old");
    assert_eq!(sent_body(&host, 1)["method"], "initialize");
    assert_eq!(sent_body(&host, 2)["method"], "notifications/initialized");
    let request = sent_body(&host, 3);
    assert!(request["params"].get("_meta").is_none(), "per-request _meta is dropped for a legacy server");
    assert_eq!(host.requests.borrow()[3].headers()["mcp-session-id"], "s-1");
    assert_eq!(host.requests.borrow()[3].headers()["mcp-protocol-version"], "2025-06-18");
    // The next request goes straight to the kept session: no probe, no handshake.
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{"tools":[]}}"#));
    send(&host, "/mcp/auto/", modern("tools/list", json!({})), &modern_headers("tools/list"));
    assert_eq!(host.requests.borrow().len(), 5);
    assert_eq!(sent_body(&host, 4)["method"], "tools/list");
}

#[test]
fn an_expired_legacy_session_is_replaced_once() {
    let host = host();
    let until = (host.now.get() + 60_000).to_string();
    host.kv.borrow_mut().insert("mcp:era:auto".into(), Bytes::from(until));
    let init = || FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "application/json".into()), ("mcp-session-id", "s-2".into())],
        body: Bytes::from_static(
            br#"{"jsonrpc":"2.0","id":0,"result":{"protocolVersion":"2025-11-25","capabilities":{}}}"#,
        ),
    };
    host.answer(init());
    host.answer(FakeAnswer::Full { status: 202, headers: vec![], body: Bytes::new() });
    host.answer(FakeAnswer::json(
        404,
        r#"{"jsonrpc":"2.0","id":null,"error":{"code":-32600,"message":"Session not found"}}"#,
    ));
    host.answer(init());
    host.answer(FakeAnswer::Full { status: 202, headers: vec![], body: Bytes::new() });
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{"content":[],"isError":false}}"#));
    let mut headers = modern_headers("tools/call");
    headers.push(("mcp-name", "search"));
    let reply = send(&host, "/mcp/auto/", modern("tools/call", json!({"name": "search", "arguments": {}})), &headers);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let methods: Vec<Value> = (0..6).map(|i| sent_body(&host, i)["method"].clone()).collect();
    assert_eq!(
        methods,
        [
            "initialize",
            "notifications/initialized",
            "tools/call",
            "initialize",
            "notifications/initialized",
            "tools/call"
        ]
    );
}

#[test]
fn a_legacy_client_of_a_current_era_server_gets_a_sealed_session() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"ttlMs":0,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"new","version":"2"}}}}"#));
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-03-26", "capabilities": {"roots": {}}, "clientInfo": {"name": "legacy", "version": "0"}}});
    let reply = send(&host, "/mcp/current", init, &[]);
    assert_eq!(reply.json()["result"]["protocolVersion"], "2025-03-26");
    assert_eq!(reply.json()["result"]["serverInfo"]["name"], "new");
    assert_eq!(sent_body(&host, 0)["method"], "server/discover");
    let session = reply.headers["mcp-session-id"].to_str().unwrap().to_owned();
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"search"}],"resultType":"complete","ttlMs":0,"cacheScope":"private"}}"#));
    let list = json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"});
    let reply = send(&host, "/mcp/current", list.clone(), &[("mcp-session-id", &session)]);
    assert_eq!(reply.json()["result"], json!({"tools": [{"name": "search"}]}));
    let sent = sent_body(&host, 1);
    assert_eq!(sent["params"]["_meta"]["io.modelcontextprotocol/clientCapabilities"], json!({"roots": {}}));
    assert_eq!(sent["params"]["_meta"]["io.modelcontextprotocol/clientInfo"]["name"], "legacy");
    assert_eq!(host.requests.borrow()[1].headers()["mcp-method"], "tools/list");
    assert_eq!(send(&host, "/mcp/current", list.clone(), &[("mcp-session-id", "forged.00")]).status, 404);
    assert_eq!(send(&host, "/mcp/current", list, &[]).status, 400);
    let ping = send(
        &host,
        "/mcp/current",
        json!({"jsonrpc": "2.0", "id": 9, "method": "ping"}),
        &[("mcp-session-id", &session)],
    );
    assert_eq!(ping.json()["result"], json!({}));
    assert_eq!(host.requests.borrow().len(), 2, "ping is answered at the edge");
}

fn cache_entries(host: &FakeHost) -> usize {
    host.kv.borrow().keys().filter(|k| k.starts_with("mcp:cache:")).count()
}

#[test]
fn a_multi_round_trip_request_is_never_cached_neither_its_question_nor_its_retry() {
    let host = host();
    let read = |params: Value| {
        send(&host, "/mcp/current/", modern("resources/read", params), &modern_headers("resources/read"))
    };
    let contents = |text: &str| {
        json!({"jsonrpc": "2.0", "id": 1, "result": {"contents": [{"uri": "file:///a", "text": text}],
               "resultType": "complete", "ttlMs": 60000, "cacheScope": "private"}})
        .to_string()
    };
    // A plain read with a ttlMs is kept and served from the edge: the cache is on for this server.
    host.answer(FakeAnswer::json(200, &contents("plain")));
    assert_eq!(read(json!({"uri": "file:///a"})).headers["x-gateway-cache"], "miss");
    assert_eq!(read(json!({"uri": "file:///a"})).headers["x-gateway-cache"], "hit");
    assert_eq!((host.requests.borrow().len(), cache_entries(&host)), (1, 1));

    // The server asks the user first: its question is not kept, even with a ttlMs.
    let question = json!({"jsonrpc": "2.0", "id": 1, "result": {"resultType": "input_required", "ttlMs": 60000,
        "inputRequests": {"confirm": {"method": "elicitation/create", "params": {"message": "Read it?"}}},
        "requestState": "state-1"}});
    let retry = json!({"uri": "file:///b", "inputResponses": {"confirm": {"action": "accept", "content": {}}},
                       "requestState": "state-1"});
    for _ in 0..2 {
        host.answer(FakeAnswer::json(200, &question.to_string()));
        let asked = read(json!({"uri": "file:///b"}));
        assert_eq!(asked.json()["result"]["resultType"], "input_required");
        assert_ne!(asked.headers.get("x-gateway-cache").map(|v| v.to_str().unwrap()), Some("hit"));
    }
    // Its retry, answered with a cacheable result, reaches the server each time and is not kept.
    for text in ["first answer", "second answer"] {
        host.answer(FakeAnswer::json(200, &contents(text)));
        let answered = read(retry.clone());
        assert_eq!(answered.json()["result"]["contents"][0]["text"], text);
        assert_ne!(answered.headers.get("x-gateway-cache").map(|v| v.to_str().unwrap()), Some("hit"));
    }
    assert_eq!(host.requests.borrow().len(), 5, "every round trip reached the server");
    assert_eq!(cache_entries(&host), 1, "only the plain read was kept");
    assert_eq!(sent_body(&host, 4)["params"]["requestState"], "state-1", "the retry is forwarded whole");
}

#[test]
fn malformed_json_rpc_is_a_400_with_a_json_rpc_error() {
    let host = host();
    let request = http::Request::post("/mcp/docs/")
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::Full(Bytes::from_static(b"{not json")))
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), request));
    assert_eq!(response.status(), 400);
    let Body::Full(body) = response.into_body() else { panic!() };
    assert_eq!(serde_json::from_slice::<Value>(&body).unwrap()["error"]["code"], -32700);
}

#[test]
fn every_exchange_leaves_an_audit_record_with_redacted_arguments_and_no_credentials() {
    let host = host();
    host.answer(FakeAnswer::json(
        200,
        r#"{"jsonrpc":"2.0","id":1,"result":{"content":[{"type":"text","text":"ok"}]}}"#,
    ));
    let mut headers = modern_headers("tools/call");
    headers.push(("mcp-name", "search"));
    let args = json!({"name": "search", "arguments": {"q": "rust", "api_key": "sk-very-secret", "note": "Bearer abc"}});
    send(&host, "/mcp/docs/", modern("tools/call", args), &headers);
    let refused = modern("tools/call", json!({"name": "delete_all", "arguments": {}}));
    send(&host, "/mcp/docs/", refused, &[]);
    for work in host.take_deferred() {
        block_on(work);
    }
    let logs = host.logs.borrow();
    let audits: Vec<Value> =
        logs.iter().filter(|l| l.contains("\"msg\":\"audit\"")).map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(audits.len(), 2, "{logs:?}");
    let record = |i: usize| audits[i]["resourceLogs"][0]["scopeLogs"][0]["logRecords"][0].clone();
    let attributes = |i: usize| -> Value {
        record(i)["attributes"]
            .as_array()
            .unwrap()
            .iter()
            .map(|a| (a["key"].as_str().unwrap().to_owned(), a["value"].clone()))
            .collect::<serde_json::Map<_, _>>()
            .into()
    };
    let first = attributes(0);
    assert_eq!(first["gen_ai.tool.name"]["stringValue"], "search");
    assert_eq!(first["gateway.decision"]["stringValue"], "allowed");
    assert_eq!(first["gateway.principal.id"]["stringValue"], "bot");
    assert_eq!(first["http.response.status_code"]["intValue"], "200");
    let arguments = first["gateway.mcp.arguments"]["stringValue"].as_str().unwrap();
    assert!(arguments.contains("rust") && !arguments.contains("sk-very-secret") && !arguments.contains("Bearer abc"));
    assert_eq!(attributes(1)["gateway.decision"]["stringValue"], "refused: tool_not_enabled");
    let everything = logs.join("\n");
    for secret in [KEY, "sk-docs-upstream", "sk-very-secret"] {
        assert!(!everything.contains(secret), "{secret} leaked into the log");
    }
}

fn call_search(host: &Rc<FakeHost>, slug: &str) -> Reply {
    let mut headers = modern_headers("tools/call");
    headers.push(("mcp-name", "search"));
    send(host, &format!("/mcp/{slug}/"), modern("tools/call", json!({"name": "search", "arguments": {}})), &headers)
}

const RESULT: &str = r#"{"jsonrpc":"2.0","id":1,"result":{"content":[]}}"#;

#[test]
fn a_brokered_token_is_attached_and_cached_no_longer_than_it_is_valid() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"access_token":"tok-1","expires_in":60}"#));
    host.answer(FakeAnswer::json(200, RESULT));
    assert_eq!(call_search(&host, "brokered").status, 200);
    {
        let requests = host.requests.borrow();
        assert_eq!(requests[0].uri(), "http://broker.test/token");
        assert_eq!(requests[0].headers()["authorization"], "Bearer sk-broker-admin");
        let asked: Value = serde_json::from_slice(requests[0].body()).unwrap();
        assert_eq!(
            asked,
            json!({"principal": {"kind": "agent", "id": "bot", "attributes": {}}, "server": "brokered",
                                 "resource": "http://mcp.test/mcp"})
        );
        assert_eq!(requests[1].headers()["authorization"], "Bearer tok-1");
    }
    // Within its validity the token comes from the cache; past it (less a margin), from the broker.
    host.answer(FakeAnswer::json(200, RESULT));
    call_search(&host, "brokered");
    assert_eq!(host.requests.borrow().len(), 3);
    host.now.set(host.now.get() + 56_000);
    host.answer(FakeAnswer::json(200, r#"{"access_token":"tok-2","expires_in":60}"#));
    host.answer(FakeAnswer::json(200, RESULT));
    call_search(&host, "brokered");
    let requests = host.requests.borrow();
    assert_eq!(requests[3].uri(), "http://broker.test/token");
    assert_eq!(requests[4].headers()["authorization"], "Bearer tok-2");
}

#[test]
fn a_principal_without_a_token_gets_403_downstream_auth_required_and_a_down_broker_502() {
    let host = host();
    host.answer(FakeAnswer::json(404, r#"{"authorization_url":"https://idp.test/authorize?x=1"}"#));
    let reply = call_search(&host, "brokered");
    assert_eq!(reply.status, 403);
    assert_eq!(reply.json()["error"]["data"]["reason"], "downstream_auth_required");
    assert_eq!(reply.json()["error"]["data"]["authorization_url"], "https://idp.test/authorize?x=1");
    assert_eq!(host.requests.borrow().len(), 1, "nothing reached the server");
    host.answer(FakeAnswer::ConnectError);
    assert_eq!(call_search(&host, "brokered").status, 502);
    host.answer(FakeAnswer::Hang);
    let hung = call_search(&host, "brokered");
    assert_eq!(hung.status, 502);
    assert!(hung.json()["error"]["message"].as_str().unwrap().contains("no answer within"));
    host.answer(FakeAnswer::json(500, "{}"));
    assert_eq!(call_search(&host, "brokered").status, 502);
    assert_eq!(host.requests.borrow().len(), 4, "only the broker was asked");
}

#[test]
fn oauth_passthrough_challenges_publishes_metadata_and_forwards_the_token_unchanged() {
    let host = host();
    let call = modern("tools/call", json!({"name": "search", "arguments": {}}));
    let mut headers = modern_headers("tools/call");
    headers.push(("mcp-name", "search"));
    headers.push(("host", "gw.example.com"));
    // The gateway key in Authorization (no x-gateway-key): refused, the key must travel apart.
    assert_eq!(send(&host, "/mcp/oauth/", call.clone(), &headers).status, 401);
    // The gateway key apart, no token yet: the challenge that starts the client's OAuth flow.
    let request = http::Request::post("/mcp/oauth/")
        .header("x-gateway-key", KEY)
        .header("host", "gw.example.com")
        .header("content-type", "application/json")
        .body(Body::Full(Bytes::from(call.to_string())))
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), request));
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer resource_metadata=\"https://gw.example.com/.well-known/oauth-protected-resource/mcp/oauth/\""
    );
    assert!(host.requests.borrow().is_empty());
    // The metadata names the server's authorization servers (fetched from its own metadata).
    host.answer(FakeAnswer::json(200, r#"{"resource":"http://secure.test/mcp","authorization_servers":["https://as.test"],"scopes_supported":["files"]}"#));
    let metadata = http::Request::get("/.well-known/oauth-protected-resource/mcp/oauth/")
        .header("host", "gw.example.com")
        .body(Body::empty())
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), metadata));
    assert_eq!(response.status(), 200);
    let Body::Full(body) = response.into_body() else { panic!() };
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["resource"], "https://gw.example.com/mcp/oauth/");
    assert_eq!(document["authorization_servers"], json!(["https://as.test"]));
    assert_eq!(document["scopes_supported"], json!(["files"]));
    assert_eq!(host.requests.borrow()[0].uri(), "http://secure.test/.well-known/oauth-protected-resource/mcp");
    // With its token: forwarded unchanged; the server's challenge is pointed back at the gateway.
    host.answer(FakeAnswer::Full {
        status: 401,
        headers: vec![("www-authenticate", r#"Bearer error="invalid_token", resource_metadata="http://secure.test/.well-known/oauth-protected-resource/mcp""#.into()),
                      ("content-type", "application/json".into())],
        body: Bytes::from_static(b"{}"),
    });
    let mut request = http::Request::post("/mcp/oauth/")
        .header("x-gateway-key", KEY)
        .header("authorization", "Bearer user-oauth-token")
        .header("host", "gw.example.com")
        .header("content-type", "application/json");
    for (name, value) in modern_headers("tools/call").into_iter().chain([("mcp-name", "search")]) {
        request = request.header(name, value);
    }
    let response = block_on(gateway_core::handle(
        Rc::clone(&host),
        &ConfigCache::default(),
        request.body(Body::Full(Bytes::from(call.to_string()))).unwrap(),
    ));
    assert_eq!(host.requests.borrow()[1].headers()["authorization"], "Bearer user-oauth-token");
    assert!(host.requests.borrow()[1].headers().get("x-gateway-key").is_none());
    assert_eq!(response.status(), 401);
    assert_eq!(
        response.headers()["www-authenticate"],
        "Bearer resource_metadata=\"https://gw.example.com/.well-known/oauth-protected-resource/mcp/oauth/\", error=\"invalid_token\""
    );
    for work in host.take_deferred() {
        block_on(work);
    }
    assert!(!host.logs.borrow().join("\n").contains("user-oauth-token"), "the token is never logged");
}

#[test]
fn configured_authorization_servers_need_no_fetch_and_other_modes_turn_a_challenge_into_502() {
    let host = host();
    let metadata = http::Request::get("/.well-known/oauth-protected-resource/mcp/oauth-pinned")
        .header("host", "127.0.0.1:8787")
        .body(Body::empty())
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), metadata));
    let Body::Full(body) = response.into_body() else { panic!() };
    let document: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(document["resource"], "http://127.0.0.1:8787/mcp/oauth-pinned");
    assert_eq!(document["authorization_servers"], json!(["https://idp.example"]));
    assert!(host.requests.borrow().is_empty());
    let none = http::Request::get("/.well-known/oauth-protected-resource/mcp/docs").body(Body::empty()).unwrap();
    assert_eq!(block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), none)).status(), 404);
    host.answer(FakeAnswer::Full {
        status: 401,
        headers: vec![("www-authenticate", "Bearer error=\"invalid_token\"".into())],
        body: Bytes::new(),
    });
    let reply = call_search(&host, "docs");
    assert_eq!(reply.status, 502);
    assert!(reply.headers.get("www-authenticate").is_none());
}

#[test]
fn routing_headers_are_written_from_the_body_never_passed_on_from_the_client() {
    let host = host();
    host.answer(FakeAnswer::json(200, RESULT));
    // A legacy-era request with an enabled tool in the body and another name in its header.
    let call =
        json!({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "params": {"name": "search", "arguments": {}}});
    send(&host, "/mcp/docs/", call, &[("mcp-protocol-version", "2025-06-18"), ("mcp-method", "tools/list")]);
    assert!(host.requests.borrow()[0].headers().get("mcp-method").is_none());
    host.answer(FakeAnswer::json(200, RESULT));
    call_search(&host, "docs");
    assert_eq!(host.requests.borrow()[1].headers()["mcp-name"], "search");
    let repeated = http::Request::post("/mcp/docs/")
        .header("authorization", format!("Bearer {KEY}"))
        .header("mcp-protocol-version", MODERN)
        .header("mcp-method", "tools/call")
        .header("mcp-name", "search")
        .header("mcp-name", "fetch")
        .body(Body::Full(Bytes::from(modern("tools/call", json!({"name": "search", "arguments": {}})).to_string())))
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), repeated));
    assert_eq!(response.status(), 400);
}

#[test]
fn a_replayed_stream_on_get_has_its_tool_lists_filtered_too() {
    let host = host();
    // A session at the legacy server, opened through the gateway.
    host.answer(FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "application/json".into()), ("mcp-session-id", "s-9".into())],
        body: Bytes::from(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{}}}"#),
    });
    let init = json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {"protocolVersion": "2025-06-18"}});
    let reply = send(&host, "/mcp/docs/", init, &[]);
    let session = reply.headers["mcp-session-id"].to_str().unwrap().to_owned();
    let sse = "id: 7\ndata: {\"jsonrpc\":\"2.0\",\"id\":3,\"result\":{\"tools\":[{\"name\":\"search\"},{\"name\":\"rm\"}]}}\n\n";
    host.answer(FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "text/event-stream".into())],
        body: Bytes::from(sse),
    });
    let request = http::Request::get("/mcp/docs/")
        .header("authorization", format!("Bearer {KEY}"))
        .header("mcp-session-id", &session)
        .header("last-event-id", "6")
        .body(Body::empty())
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), request));
    let Body::Stream(mut stream) = response.into_body() else { panic!("an event stream") };
    let mut text = Vec::new();
    while let Some(Ok(chunk)) = block_on(stream.next()) {
        text.extend_from_slice(&chunk);
    }
    let text = String::from_utf8(text).unwrap();
    assert!(text.contains("\"search\"") && !text.contains("\"rm\""), "{text}");
    assert_eq!(host.requests.borrow()[1].headers()["last-event-id"], "6");
    assert_eq!(host.requests.borrow()[1].headers()["mcp-session-id"], "s-9");
}

#[test]
fn the_gateway_key_is_never_taken_for_an_oauth_token() {
    let host = host();
    let request = http::Request::post("/mcp/oauth/")
        .header("x-gateway-key", KEY)
        .header("authorization", format!("Bearer {KEY}"))
        .body(Body::Full(Bytes::from(modern("tools/list", json!({})).to_string())))
        .unwrap();
    let response = block_on(gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), request));
    assert_eq!(response.status(), 401);
    assert!(host.requests.borrow().is_empty());
}

#[test]
fn a_brokered_token_the_server_refuses_is_forgotten() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"access_token":"tok-revoked","expires_in":600}"#));
    host.answer(FakeAnswer::Full {
        status: 401,
        headers: vec![("www-authenticate", "Bearer error=\"invalid_token\"".into())],
        body: Bytes::new(),
    });
    assert_eq!(call_search(&host, "brokered").status, 502);
    host.answer(FakeAnswer::json(200, r#"{"access_token":"tok-new","expires_in":600}"#));
    host.answer(FakeAnswer::json(200, RESULT));
    assert_eq!(call_search(&host, "brokered").status, 200);
    let requests = host.requests.borrow();
    assert_eq!(requests[2].uri(), "http://broker.test/token", "the broker is asked again");
    assert_eq!(requests[3].headers()["authorization"], "Bearer tok-new");
}
