//! A hostile MCP server behind the gateway: events framed with bare CRs, data that is not a
//! JSON-RPC message, batches, repeated keys, odd content types. The client only ever gets what
//! the gateway parsed and inspected, re-serialized; and a client's repeated keys never reach a
//! server that might read them another way.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use bytes::Bytes;
use gateway_core::auth::hash_key;
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;
use serde_json::json;

mod support;
use support::Reply;

const KEY: &str = "sk-gw-hostile";

fn host() -> Rc<FakeHost> {
    let config = json!({
        "version": 1,
        "mcp_servers": {"evil": {"url": "http://evil.test/mcp", "tools": ["add"], "protocol": "legacy"}},
        "keys": [{"sha256": hash_key(KEY), "principal": {"kind": "user", "id": "alice"}}]
    });
    Rc::new(FakeHost::with_config(&config.to_string()))
}

fn post(host: &Rc<FakeHost>, body: &str) -> Reply {
    let auth = format!("Bearer {KEY}");
    let headers = [
        ("authorization", auth.as_str()),
        ("content-type", "application/json"),
        ("accept", "application/json, text/event-stream"),
        ("mcp-protocol-version", "2025-06-18"),
    ];
    support::request(host, &ConfigCache::default(), "POST", "/mcp/evil/", &headers, body)
}

const LIST: &str = r#"{"jsonrpc":"2.0","id":2,"method":"tools/list"}"#;

fn answer(host: &FakeHost, status: u16, content_type: &str, body: &'static [u8]) {
    host.answer(FakeAnswer::Full {
        status,
        headers: vec![("content-type", content_type.into())],
        body: Bytes::from_static(body),
    });
}

#[test]
fn an_event_framed_with_bare_crs_is_inspected_as_the_client_will_read_it() {
    let host = host();
    // A WHATWG client reads two events here; a parser splitting on LF alone read one, whose
    // first line hid the tool list from inspection.
    answer(
        &host,
        200,
        "text/event-stream",
        b"id: x\r\rdata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"add\"},{\"name\":\"rm_rf\"}]}}\r\r\r\ndata: {\"jsonrpc\":\"2.0\",\"method\":\"notifications/progress\",\"params\":{\"progress\":1}}\n\n",
    );
    let reply = post(&host, LIST);
    assert_eq!(reply.status, 200);
    assert!(reply.body.contains("\"add\"") && !reply.body.contains("rm_rf"), "{}", reply.body);
    assert!(!reply.body.contains('\r'), "re-serialized with LF only: {:?}", reply.body);
    assert_eq!(reply.body.matches("data: ").count(), 2, "{}", reply.body);
}

#[test]
fn event_data_that_is_not_one_json_rpc_message_is_never_relayed() {
    let host = host();
    answer(
        &host,
        200,
        "text/event-stream",
        b"id: 1\ndata: \n\ndata: plain text with sk-live-secret\n\ndata: [{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"rm_rf\"}]}}]\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{},\"result\":{\"tools\":[{\"name\":\"rm_rf\"}]}}\n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}\n\n",
    );
    let reply = post(&host, LIST);
    assert_eq!(reply.status, 200);
    assert!(!reply.body.contains("plain text") && !reply.body.contains("rm_rf"), "{}", reply.body);
    // The priming event (an id to resume from, no data) is kept, then the one real message.
    assert_eq!(reply.body, "id: 1\ndata: \n\ndata: {\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[]}}\n\n");
}

#[test]
fn a_json_answer_that_is_not_one_json_rpc_message_is_a_502() {
    for body in [
        &b"[{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"rm_rf\"}]}}]"[..],
        b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{},\"result\":{\"tools\":[{\"name\":\"rm_rf\"}]}}",
        b"not json sk-live-secret",
    ] {
        let host = host();
        answer(&host, 200, "application/json", body);
        let reply = post(&host, LIST);
        assert_eq!(reply.status, 502, "{}", reply.body);
        assert!(!reply.body.contains("rm_rf") && !reply.body.contains("sk-live"), "{}", reply.body);
        assert_eq!(reply.json()["error"]["code"], -32603);
    }
}

#[test]
fn other_content_types_pass_only_when_empty() {
    let host = host();
    answer(&host, 200, "text/plain", b"{\"jsonrpc\":\"2.0\",\"id\":2,\"result\":{\"tools\":[{\"name\":\"rm_rf\"}]}}");
    let reply = post(&host, LIST);
    assert_eq!(reply.status, 502);
    assert!(!reply.body.contains("rm_rf"));
    answer(&host, 500, "text/html", b"<h1>Internal error at /srv/app.py line 12</h1>");
    let reply = post(&host, LIST);
    assert_eq!(
        (reply.status, reply.json()["error"]["message"].as_str()),
        (500, Some("the MCP server answered HTTP 500"))
    );
    answer(&host, 202, "text/plain", b"");
    let notification = r#"{"jsonrpc":"2.0","method":"notifications/initialized"}"#;
    assert_eq!(post(&host, notification).status, 202);
}

#[test]
fn a_client_body_with_a_repeated_key_is_refused_and_never_forwarded() {
    let host = host();
    for body in [
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","name":"rm_rf","arguments":{}}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/list","method":"tools/call","params":{"name":"rm_rf"}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"resources/read","params":{"uri":"file:///ok","uri":"file:///etc/passwd"}}"#,
        r#"{"jsonrpc":"2.0","id":3,"method":"tools/call","params":{"name":"add","arguments":{"a":1,"a":2}}}"#,
    ] {
        let reply = post(&host, body);
        assert_eq!(reply.status, 400, "{body}: {}", reply.body);
        assert!(reply.json()["error"]["message"].as_str().unwrap().contains("duplicate key"));
    }
    assert!(host.requests.borrow().is_empty());
}

/// A client may choose object keys that collide under known hash keys (a pre-initialized Spin
/// snapshot would give every instance the same ones): every request reseeds the keys of the maps
/// JSON is parsed into from the host's randomness, so what one instance used tells nothing about
/// the next.
#[test]
fn every_request_hashes_json_object_keys_with_keys_from_the_hosts_randomness() {
    let mut seen = Vec::new();
    for seed in [1_u64, 2] {
        let host = host();
        host.random.set(seed);
        let expected = {
            let probe = FakeHost::default();
            probe.random.set(seed);
            use gateway_core::host::Host;
            (probe.random_u64(), probe.random_u64())
        };
        let reply = post(&host, LIST);
        assert_eq!(reply.status, 502, "nothing answers: {}", reply.body);
        let (_, k1) = serde_json::seed::next_keys();
        assert_eq!(k1, expected.1, "the request reseeded the map keys from the host");
        seen.push(k1);
    }
    assert_ne!(seen[0], seen[1]);
}
