//! Which routes and models a key may use: route controls cannot be skipped by naming a route's
//! model directly once the operator closes that door (per key `allowed_routes` /
//! `allowed_models`, per provider `direct: false`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use gateway_core::auth::hash_key;
use gateway_core::config::glob_match;
use gateway_core::testing::FakeHost;
use gateway_core::ConfigCache;
use serde_json::json;

mod support;

const FREE: &str = "sk-gw-free";
const ROUTES_ONLY: &str = "sk-gw-routes-only";
const DEMO_ONLY: &str = "sk-gw-demo-only";

fn host() -> Rc<FakeHost> {
    let config = json!({
        "version": 1,
        "providers": {"demo": {"type": "echo"}, "hidden": {"type": "echo", "direct": false}},
        "routes": {"chat": {"models": ["hidden/echo-1"]}, "other": {"models": ["demo/echo-1"]}},
        "keys": [
            {"sha256": hash_key(FREE), "principal": {"kind": "user", "id": "free"}},
            {"sha256": hash_key(ROUTES_ONLY), "principal": {"kind": "user", "id": "r"},
             "allowed_routes": ["chat"], "allowed_models": []},
            {"sha256": hash_key(DEMO_ONLY), "principal": {"kind": "agent", "id": "d"}, "allowed_models": ["demo/*"]}
        ]
    });
    Rc::new(FakeHost::with_config(&config.to_string()))
}

fn chat(host: &Rc<FakeHost>, key: &str, path: &str, model: &str) -> support::Reply {
    let auth = format!("Bearer {key}");
    let body = json!({"model": model, "messages": [{"role": "user", "content": "hi"}]}).to_string();
    support::request(host, &ConfigCache::default(), "POST", path, &[("authorization", &auth)], &body)
}

fn refused(reply: &support::Reply) -> bool {
    reply.status == 403 && reply.error()["code"] == "model_not_allowed" && reply.error()["param"] == "model"
}

#[test]
fn a_provider_closed_to_direct_use_is_reachable_only_through_routes() {
    let host = host();
    assert!(refused(&chat(&host, FREE, "/v1/chat/completions", "hidden/echo-1")));
    assert_eq!(chat(&host, FREE, "/v1/chat/completions", "chat").status, 200);
    assert_eq!(chat(&host, FREE, "/chat/v1/chat/completions", "anything").status, 200);
    assert_eq!(chat(&host, FREE, "/v1/chat/completions", "demo/echo-1").status, 200);
}

#[test]
fn a_key_kept_to_routes_cannot_name_a_model_nor_another_route() {
    let host = host();
    assert_eq!(chat(&host, ROUTES_ONLY, "/v1/chat/completions", "chat").status, 200);
    for (path, model) in [
        ("/v1/chat/completions", "demo/echo-1"),
        ("/v1/chat/completions", "other"),
        ("/other/v1/chat/completions", "chat"),
    ] {
        let reply = chat(&host, ROUTES_ONLY, path, model);
        assert!(refused(&reply), "{path} {model}: {}", reply.body);
    }
    let auth = format!("Bearer {ROUTES_ONLY}");
    let embeddings = json!({"model": "demo/echo-1", "input": "hi"}).to_string();
    let reply = support::request(
        &host,
        &ConfigCache::default(),
        "POST",
        "/v1/embeddings",
        &[("authorization", &auth)],
        &embeddings,
    );
    assert!(refused(&reply), "every endpoint: {}", reply.body);
}

#[test]
fn a_key_limited_to_model_globs_calls_those_only() {
    let host = host();
    assert_eq!(chat(&host, DEMO_ONLY, "/v1/chat/completions", "demo/echo-1").status, 200);
    assert_eq!(chat(&host, DEMO_ONLY, "/v1/chat/completions", "other").status, 200, "routes are not limited");
    assert!(refused(&chat(&host, DEMO_ONLY, "/v1/chat/completions", "openai/gpt-4o")));
}

#[test]
fn globs_match_runs_of_any_characters() {
    for (pattern, text) in [
        ("*", ""),
        ("*", "a/b"),
        ("openai/*", "openai/gpt-4o"),
        ("openai/gpt-4o*", "openai/gpt-4o-mini"),
        ("*mini", "openai/gpt-4o-mini"),
        ("a*b*c", "a-b-c"),
        ("exact", "exact"),
    ] {
        assert!(glob_match(pattern, text), "{pattern} {text}");
    }
    for (pattern, text) in
        [("openai/*", "anthropic/x"), ("a*b*c", "a-c-b"), ("exact", "exactly"), ("", "x"), ("ab*ba", "aba")]
    {
        assert!(!glob_match(pattern, text), "{pattern} {text}");
    }
}

#[test]
fn the_model_list_shows_what_the_key_may_use() {
    let host = host();
    let list = |key: &str| {
        let auth = format!("Bearer {key}");
        let reply =
            support::request(&host, &ConfigCache::default(), "GET", "/v1/models", &[("authorization", &auth)], "");
        let mut ids: Vec<String> =
            reply.json()["data"].as_array().unwrap().iter().map(|m| m["id"].as_str().unwrap().to_owned()).collect();
        ids.sort();
        ids
    };
    assert_eq!(list(ROUTES_ONLY), vec!["chat"]);
    assert_eq!(list(FREE), vec!["chat", "other"], "echo lists no models of its own; hidden never");
}
