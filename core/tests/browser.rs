//! The browser boundary from the wrong side: a page of a foreign origin, a DNS-rebound page on a
//! developer's loopback gateway, a page trying the admin API; and an allowed browser app, whose
//! preflight is answered and whose responses it may read.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use gateway_core::auth::hash_key;
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;
use serde_json::json;

mod support;
use support::Reply;

const KEY: &str = "sk-gw-browser";
const ADMIN: &str = "sk-admin-browser";
const APP: &str = "https://app.example";
const CHAT: &str = r#"{"model":"openai/gpt-4o","messages":[{"role":"user","content":"hi"}]}"#;

fn host(loopback_only: bool) -> Rc<FakeHost> {
    let config = json!({
        "version": 1,
        "allowed_origins": [APP],
        "providers": {"openai": {"type": "openai", "api_key_secret": "openai_api_key", "base_url": "http://up.test/v1"}},
        "mcp_servers": {"docs": {"url": "http://mcp.test/mcp", "tools": ["search"]}},
        "keys": [{"sha256": hash_key(KEY), "principal": {"kind": "user", "id": "alice"}}]
    });
    let mut host = FakeHost::with_config(&config.to_string());
    host.secrets.insert("openai_api_key".into(), "sk-openai-real".into());
    host.secrets.insert("gateway_admin_key".into(), ADMIN.into());
    if loopback_only {
        host.secrets.insert("gateway_loopback_only".into(), "true".into());
    }
    Rc::new(host)
}

fn send(host: &Rc<FakeHost>, method: &str, path: &str, extra: &[(&str, &str)], body: &str) -> Reply {
    let auth = format!("Bearer {KEY}");
    let mut headers = vec![("authorization", auth.as_str()), ("content-type", "application/json")];
    headers.extend_from_slice(extra);
    support::request(host, &ConfigCache::default(), method, path, &headers, body)
}

fn completion(host: &FakeHost) {
    host.answer(FakeAnswer::json(200, r#"{"id":"c","object":"chat.completion","created":1,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"ok"},"finish_reason":"stop"}]}"#));
}

#[test]
fn a_page_of_an_origin_not_allowed_is_refused_before_anything_is_forwarded() {
    let host = host(false);
    for origin in ["https://evil.example", "null", "https://app.example.evil.example"] {
        let reply = send(&host, "POST", "/v1/chat/completions", &[("origin", origin)], CHAT);
        assert_eq!((reply.status, reply.error()["code"].as_str()), (403, Some("origin_not_allowed")), "{origin}");
        assert!(reply.header("access-control-allow-origin").is_none());
        let mcp = send(
            &host,
            "POST",
            "/mcp/docs/",
            &[("origin", origin)],
            r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#,
        );
        assert_eq!((mcp.status, mcp.json()["jsonrpc"].as_str()), (403, Some("2.0")), "JSON-RPC shape: {}", mcp.body);
    }
    assert_eq!(support::upstream_calls(&host), 0);
}

#[test]
fn an_allowed_origin_gets_its_preflight_answered_and_may_read_the_answer() {
    let host = host(false);
    let preflight = support::request(
        &host,
        &ConfigCache::default(),
        "OPTIONS",
        "/v1/chat/completions",
        &[
            ("origin", APP),
            ("access-control-request-method", "POST"),
            ("access-control-request-headers", "authorization, content-type, x-stainless-os"),
        ],
        "",
    );
    assert_eq!(preflight.status, 204);
    assert_eq!(preflight.header("access-control-allow-origin"), Some(APP));
    assert_eq!(preflight.header("access-control-allow-headers"), Some("authorization, content-type, x-stainless-os"));
    assert!(preflight.header("access-control-allow-methods").unwrap().contains("POST"));
    completion(&host);
    let reply = send(&host, "POST", "/v1/chat/completions", &[("origin", APP)], CHAT);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.header("access-control-allow-origin"), Some(APP));
    assert!(reply.header("access-control-expose-headers").unwrap().contains("mcp-session-id"));
    // Errors are readable by the app too (a wrong key, say).
    let wrong = support::request(&host, &ConfigCache::default(), "GET", "/v1/models", &[("origin", APP)], "");
    assert_eq!((wrong.status, wrong.header("access-control-allow-origin")), (401, Some(APP)));
    let refused = support::request(
        &host,
        &ConfigCache::default(),
        "OPTIONS",
        "/v1/chat/completions",
        &[("origin", "https://evil.example"), ("access-control-request-method", "POST")],
        "",
    );
    assert_eq!((refused.status, refused.header("access-control-allow-origin")), (403, None));
}

#[test]
fn no_page_reaches_the_admin_api_even_from_an_allowed_origin() {
    let host = host(false);
    let admin = format!("Bearer {ADMIN}");
    for origin in [APP, "https://evil.example", "null"] {
        let reply = support::request(
            &host,
            &ConfigCache::default(),
            "GET",
            "/admin/config",
            &[("authorization", &admin), ("origin", origin)],
            "",
        );
        assert_eq!((reply.status, reply.error()["code"].as_str()), (403, Some("origin_not_allowed")), "{origin}");
        assert!(!reply.body.contains("sk-openai-real"));
    }
    let reply =
        support::request(&host, &ConfigCache::default(), "GET", "/admin/config", &[("authorization", &admin)], "");
    assert_eq!(reply.status, 200, "without a page, the admin key works: {}", reply.body);
}

#[test]
fn a_loopback_listener_refuses_a_foreign_host_name() {
    let host = host(true);
    for name in ["evil.example", "evil.example:8787", "127.0.0.1.nip.io:8787"] {
        let reply = send(&host, "GET", "/v1/models", &[("host", name)], "");
        assert_eq!((reply.status, reply.error()["code"].as_str()), (403, Some("host_not_allowed")), "{name}");
        let mcp =
            send(&host, "POST", "/mcp/docs/", &[("host", name)], r#"{"jsonrpc":"2.0","id":1,"method":"tools/list"}"#);
        assert_eq!((mcp.status, mcp.json()["jsonrpc"].as_str()), (403, Some("2.0")));
    }
    for name in ["127.0.0.1:8787", "localhost:8787", "[::1]:8787"] {
        let reply = send(&host, "GET", "/v1/models", &[("host", name)], "");
        assert_eq!(reply.status, 200, "{name}: {}", reply.body);
    }
    // Without the loopback setting (a deployed gateway), any host name is served.
    assert_eq!(send(&self::host(false), "GET", "/v1/models", &[("host", "gateway.example.com")], "").status, 200);
}
