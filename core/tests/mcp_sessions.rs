//! MCP sessions belong to whoever opened them: the gateway issues its own sealed session ids,
//! maps them back to the server's, refuses them to every other principal (and, with
//! `oauth_passthrough`, every other token subject) with nothing forwarded, expires them and ends
//! them on `DELETE` for every edge instance.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use bytes::Bytes;
use gateway_core::auth::hash_key;
use gateway_core::mcp::session::SESSION_LIFETIME_MS;
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;
use serde_json::{json, Value};

const ALICE: &str = "sk-gw-alice";
const BOB: &str = "sk-gw-bob";

fn host() -> Rc<FakeHost> {
    let config = json!({
        "version": 1,
        "mcp_servers": {
            "legacy": {"url": "http://old.test/mcp", "tools": ["add"], "protocol": "legacy"},
            "current": {"url": "http://new.test/mcp", "tools": ["add"], "protocol": "2026-07-28"},
            "oauth": {"url": "http://secure.test/mcp", "tools": ["add"], "protocol": "legacy",
                      "credential": {"mode": "oauth_passthrough"}}
        },
        "keys": [{"sha256": hash_key(ALICE), "principal": {"kind": "user", "id": "alice"}},
                 {"sha256": hash_key(BOB), "principal": {"kind": "user", "id": "bob"}}]
    });
    let mut host = FakeHost::with_config(&config.to_string());
    host.secrets.insert("mcp_session_key".into(), "test-session-key".into());
    host.now.set(1_000_000);
    Rc::new(host)
}

mod support;
use support::Reply;

fn call(host: &Rc<FakeHost>, method: http::Method, path: &str, headers: &[(&str, &str)], body: Option<Value>) -> Reply {
    let mut all = vec![("accept", "application/json, text/event-stream")];
    all.extend_from_slice(headers);
    let body = body.map_or(String::new(), |b| b.to_string());
    support::request(host, &ConfigCache::default(), method.as_str(), path, &all, &body)
}

fn post(host: &Rc<FakeHost>, path: &str, key: &str, session: Option<&str>, body: Value) -> Reply {
    let auth = format!("Bearer {key}");
    let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
    if let Some(session) = session {
        headers.push(("mcp-session-id", session));
    }
    call(host, http::Method::POST, path, &headers, Some(body))
}

fn initialize() -> Value {
    json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-06-18", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}})
}

fn list() -> Value {
    json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"})
}

/// The server's `initialize` answer, naming its own session.
fn server_session(host: &FakeHost, upstream: &str) {
    host.answer(FakeAnswer::Full {
        status: 200,
        headers: vec![("content-type", "application/json".into()), ("mcp-session-id", upstream.into())],
        body: Bytes::from(r#"{"jsonrpc":"2.0","id":1,"result":{"protocolVersion":"2025-06-18","capabilities":{"tools":{}},"serverInfo":{"name":"old","version":"1"}}}"#),
    });
}

fn tools_answer(host: &FakeHost) {
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":2,"result":{"tools":[{"name":"add"}]}}"#));
}

/// Alice opens a session at the legacy server; the gateway's id for it.
fn alices_session(host: &Rc<FakeHost>) -> String {
    server_session(host, "upstream-7");
    let reply = post(host, "/mcp/legacy/", ALICE, None, initialize());
    assert_eq!(reply.status, 200, "{}", reply.body);
    reply.headers["mcp-session-id"].to_str().unwrap().to_owned()
}

fn forwarded(host: &FakeHost) -> usize {
    host.requests.borrow().len()
}

#[test]
fn a_legacy_servers_session_reaches_the_client_sealed_and_the_server_gets_its_own_back() {
    let host = host();
    let session = alices_session(&host);
    assert!(session.starts_with("gw2.") && !session.contains("upstream-7"), "{session}");
    tools_answer(&host);
    let reply = post(&host, "/mcp/legacy/", ALICE, Some(&session), list());
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(host.requests.borrow()[1].headers()["mcp-session-id"], "upstream-7");
}

#[test]
fn another_principal_presenting_a_session_gets_404_and_nothing_is_forwarded() {
    let host = host();
    let session = alices_session(&host);
    let before = forwarded(&host);
    let reply = post(&host, "/mcp/legacy/", BOB, Some(&session), list());
    assert_eq!((reply.status, reply.body.contains("Session not found")), (404, true), "{}", reply.body);
    let bob = format!("Bearer {BOB}");
    for method in [http::Method::GET, http::Method::DELETE] {
        let reply =
            call(&host, method.clone(), "/mcp/legacy/", &[("authorization", &bob), ("mcp-session-id", &session)], None);
        assert_eq!(reply.status, 404, "{method}: {}", reply.body);
    }
    assert_eq!(forwarded(&host), before, "nothing of Bob's reached Alice's session");
    // Alice's session was not ended by Bob's DELETE.
    tools_answer(&host);
    assert_eq!(post(&host, "/mcp/legacy/", ALICE, Some(&session), list()).status, 200);
}

#[test]
fn the_servers_own_id_or_a_forged_one_is_refused_before_anything_is_forwarded() {
    let host = host();
    let session = alices_session(&host);
    let mut tampered = session.clone().into_bytes();
    let last = tampered.len() - 1;
    tampered[last] = if tampered[last] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    for presented in ["upstream-7", tampered.as_str(), "gw2.", "gw2.00 11"] {
        let reply = post(&host, "/mcp/legacy/", ALICE, Some(presented), list());
        assert_eq!(reply.status, 404, "{presented}: {}", reply.body);
    }
    assert_eq!(forwarded(&host), 1);
}

#[test]
fn a_session_is_bound_to_its_server() {
    let host = host();
    let session = alices_session(&host);
    let reply = post(&host, "/mcp/current/", ALICE, Some(&session), list());
    assert_eq!(reply.status, 404, "{}", reply.body);
    assert_eq!(forwarded(&host), 1);
}

#[test]
fn a_session_expires_after_its_lifetime() {
    let host = host();
    let session = alices_session(&host);
    host.now.set(host.now.get() + SESSION_LIFETIME_MS - 1);
    tools_answer(&host);
    assert_eq!(post(&host, "/mcp/legacy/", ALICE, Some(&session), list()).status, 200);
    host.now.set(host.now.get() + 1);
    assert_eq!(post(&host, "/mcp/legacy/", ALICE, Some(&session), list()).status, 404);
    assert_eq!(forwarded(&host), 2);
}

#[test]
fn delete_ends_a_relayed_session_at_the_server_and_for_every_instance() {
    let host = host();
    let session = alices_session(&host);
    host.answer(FakeAnswer::Full { status: 200, headers: vec![], body: Bytes::new() });
    let alice = format!("Bearer {ALICE}");
    let reply = call(
        &host,
        http::Method::DELETE,
        "/mcp/legacy/",
        &[("authorization", &alice), ("mcp-session-id", &session)],
        None,
    );
    assert_eq!(reply.status, 200, "{}", reply.body);
    let deleted = &host.requests.borrow()[1];
    assert_eq!(
        (deleted.method(), deleted.headers()["mcp-session-id"].to_str().unwrap()),
        (&http::Method::DELETE, "upstream-7")
    );
    // Each request runs with a fresh configuration cache, as a new edge instance would.
    assert_eq!(post(&host, "/mcp/legacy/", ALICE, Some(&session), list()).status, 404);
    assert_eq!(forwarded(&host), 2);
}

#[test]
fn a_bridged_session_is_sealed_bound_and_ended_the_same_way() {
    let host = host();
    host.answer(FakeAnswer::json(200, r#"{"jsonrpc":"2.0","id":1,"result":{"resultType":"complete","supportedVersions":["2026-07-28"],"capabilities":{"tools":{}},"ttlMs":0,"cacheScope":"private","_meta":{"io.modelcontextprotocol/serverInfo":{"name":"new","version":"2"}}}}"#));
    let reply = post(&host, "/mcp/current/", ALICE, None, initialize());
    let session = reply.headers["mcp-session-id"].to_str().unwrap().to_owned();
    assert!(session.starts_with("gw2.") && !session.contains(&gateway_core::auth::hex(b"alice")), "{session}");
    assert_eq!(post(&host, "/mcp/current/", BOB, Some(&session), list()).status, 404);
    let alice = format!("Bearer {ALICE}");
    let reply = call(
        &host,
        http::Method::DELETE,
        "/mcp/current/",
        &[("authorization", &alice), ("mcp-session-id", &session)],
        None,
    );
    assert_eq!(reply.status, 200);
    assert_eq!(post(&host, "/mcp/current/", ALICE, Some(&session), list()).status, 404);
    assert_eq!(forwarded(&host), 1, "only the discovery behind initialize reached the server");
}

/// An unsigned JWT naming `sub` (the server, not the gateway, verifies tokens).
fn token(subject: &str) -> String {
    let b64 = |text: &str| {
        const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
        let bytes = text.as_bytes();
        let mut out = String::new();
        for chunk in bytes.chunks(3) {
            let n = chunk.iter().enumerate().fold(0u32, |acc, (i, b)| acc | (u32::from(*b) << (16 - 8 * i)));
            for i in 0..=chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            }
        }
        out
    };
    format!("{}.{}.sig", b64(r#"{"alg":"RS256"}"#), b64(&format!(r#"{{"iss":"https://idp.test","sub":"{subject}"}}"#)))
}

#[test]
fn with_oauth_passthrough_a_session_is_bound_to_the_token_subject_too() {
    let host = host();
    server_session(&host, "upstream-9");
    let carol = format!("Bearer {}", token("carol"));
    let send = |auth: &str, session: Option<&str>, body: Value| {
        let mut headers = vec![("x-gateway-key", ALICE), ("authorization", auth), ("content-type", "application/json")];
        if let Some(session) = session {
            headers.push(("mcp-session-id", session));
        }
        call(&host, http::Method::POST, "/mcp/oauth/", &headers, Some(body))
    };
    let reply = send(&carol, None, initialize());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let session = reply.headers["mcp-session-id"].to_str().unwrap().to_owned();
    // A refreshed token of the same subject keeps the session; another subject's does not.
    tools_answer(&host);
    let refreshed = format!("Bearer {}x", token("carol"));
    assert_eq!(send(&refreshed, Some(&session), list()).status, 200);
    let dave = format!("Bearer {}", token("dave"));
    assert_eq!(send(&dave, Some(&session), list()).status, 404);
    assert_eq!(forwarded(&host), 2);
}
