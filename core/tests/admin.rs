//! The admin API in-process, against the fake host: the admin key, pushing a document (checked
//! whole, Cedar included, then served at once), validating without storing, reading it back
//! with secret-shaped values masked, the version history, rollbacks, pruning to the last ten
//! versions, optimistic concurrency with `If-Match`, and unknown paths and methods.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::rc::Rc;

use gateway_core::auth::hash_key;
use gateway_core::testing::FakeHost;
use gateway_core::ConfigCache;
use serde_json::{json, Value};
use support::{request, Reply};

mod support;

const ADMIN_KEY: &str = "gw-admin-7Qx2Lm9Vt4Rk8Wn3Zp6Ys1Hd5Jf0Gb";
const USER_KEY: &str = "sk-gw-alice";
const OPENAI_SECRET: &str = "sk-openai-provider-secret-5d4c3b2a190f";
/// Pasted into a provider's headers by mistake: shaped like an OpenAI project key.
const OPENAI_SHAPED: &str = "sk-proj-Q7vLm2XkP9aR4tYw8ZcN1bH6jD3fG5sE0uK2iO7pA9qW4eRt";
/// Shaped like a GitHub personal access token: `ghp_` and 36 letters and digits.
const GITHUB_SHAPED: &str = "ghp_aB3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5";

/// A valid document whose routes are `routes`, each answered by the built-in echo provider.
fn document(routes: &[&str]) -> String {
    let routes: serde_json::Map<String, Value> =
        routes.iter().map(|r| ((*r).to_owned(), json!({"models": ["demo/echo-1"]}))).collect();
    json!({
        "version": 1,
        "providers": {
            "demo": {"type": "echo", "models": ["echo-1"]},
            "openai": {"type": "openai", "base_url": "http://up.test/v1", "api_key_secret": "openai_api_key"}
        },
        "routes": routes,
        "keys": [{"sha256": hash_key(USER_KEY), "principal": {"kind": "user", "id": "alice"}}]
    })
    .to_string()
}

/// A store seeded with `seed` (as `wrangler kv` or `scripts/dev` would), the admin API on.
fn host_seeded(seed: Option<&str>) -> Rc<FakeHost> {
    let mut host = match seed {
        Some(doc) => FakeHost::with_config(doc),
        None => FakeHost::default(),
    };
    host.secrets.insert("gateway_admin_key".into(), ADMIN_KEY.into());
    host.secrets.insert("openai_api_key".into(), OPENAI_SECRET.into());
    Rc::new(host)
}

fn host() -> Rc<FakeHost> {
    host_seeded(Some(&document(&["alpha"])))
}

const BEARER_ADMIN: (&str, &str) = ("authorization", "Bearer gw-admin-7Qx2Lm9Vt4Rk8Wn3Zp6Ys1Hd5Jf0Gb");

fn admin(host: &Rc<FakeHost>, cache: &ConfigCache, method: &str, path: &str, body: &str) -> Reply {
    request(host, cache, method, path, &[BEARER_ADMIN], body)
}

fn put(host: &Rc<FakeHost>, cache: &ConfigCache, document: &str) -> Reply {
    admin(host, cache, "PUT", "/admin/config", document)
}

fn rollback(host: &Rc<FakeHost>, cache: &ConfigCache, version: u64) -> Reply {
    admin(host, cache, "POST", "/admin/config/rollback", &json!({"version": version}).to_string())
}

/// Versions listed by `GET /admin/config/history`, newest first.
fn history(host: &Rc<FakeHost>, cache: &ConfigCache) -> (Value, Vec<u64>) {
    let reply = admin(host, cache, "GET", "/admin/config/history", "");
    assert_eq!(reply.status, 200, "{}", reply.body);
    let listed = reply.json();
    let versions = listed["versions"].as_array().unwrap().iter().map(|v| v["version"].as_u64().unwrap()).collect();
    (listed, versions)
}

/// A chat request on `route` with the user key: what traffic sees.
fn chat(host: &Rc<FakeHost>, cache: &ConfigCache, route: &str) -> Reply {
    let body = json!({"model": route, "messages": [{"role": "user", "content": "ping"}]}).to_string();
    request(
        host,
        cache,
        "POST",
        "/v1/chat/completions",
        &[("authorization", format!("Bearer {USER_KEY}").as_str())],
        &body,
    )
}

fn stored(host: &FakeHost, key: &str) -> Option<String> {
    host.kv.borrow().get(key).map(|b| String::from_utf8(b.to_vec()).unwrap())
}

fn kept_versions(host: &FakeHost) -> Vec<String> {
    host.kv.borrow().keys().filter(|k| k.starts_with("config/v/")).cloned().collect()
}

#[test]
fn without_its_secret_the_admin_api_is_off_with_a_403_admin_disabled() {
    let mut host = FakeHost::with_config(&document(&["alpha"]));
    host.secrets.insert("openai_api_key".into(), OPENAI_SECRET.into());
    let host = Rc::new(host);
    let cache = ConfigCache::default();
    for (method, path) in [("GET", "/admin/config"), ("PUT", "/admin/config"), ("GET", "/admin/config/history")] {
        let reply = admin(&host, &cache, method, path, &document(&["beta"]));
        assert_eq!(reply.status, 403, "{method} {path}");
        assert_eq!(reply.error()["code"], "admin_disabled");
        assert!(reply.error()["message"].as_str().unwrap().contains("gateway_admin_key"));
    }
    assert_eq!(stored(&host, "config"), Some(document(&["alpha"])), "nothing was stored");
}

#[test]
fn a_missing_or_wrong_admin_key_is_a_401_and_either_header_carries_the_right_one() {
    let host = host();
    let cache = ConfigCache::default();
    let get = |headers: &[(&str, &str)]| request(&host, &cache, "GET", "/admin/config", headers, "");
    let refused = [
        get(&[]),
        get(&[("authorization", "Bearer wrong-admin-key")]),
        get(&[("x-gateway-admin-key", "wrong-admin-key")]),
        get(&[("x-gateway-admin-key", "")]),
        get(&[("authorization", format!("Basic {ADMIN_KEY}").as_str())]),
        get(&[("authorization", format!("Bearer {USER_KEY}").as_str())]),
    ];
    for reply in &refused {
        assert_eq!(reply.status, 401, "{}", reply.body);
        assert_eq!(reply.error()["type"], "authentication_error");
        assert!(!reply.body.contains("wrong-admin-key") && !reply.body.contains(ADMIN_KEY));
    }
    assert!(refused[0].error()["message"].as_str().unwrap().contains("missing admin key"));
    assert!(refused[1].error()["message"].as_str().unwrap().contains("invalid admin key"));

    assert_eq!(get(&[BEARER_ADMIN]).status, 200);
    assert_eq!(get(&[("authorization", format!("bearer  {ADMIN_KEY} ").as_str())]).status, 200);
    assert_eq!(get(&[("x-gateway-admin-key", ADMIN_KEY)]).status, 200);
}

#[test]
fn a_valid_document_put_is_stored_as_the_next_version_and_served_at_once() {
    let host = host();
    let cache = ConfigCache::default();
    assert_eq!(chat(&host, &cache, "alpha").status, 200);
    assert_eq!(chat(&host, &cache, "beta").status, 404, "no route `beta` yet");

    let next = document(&["alpha", "beta"]);
    let reply = put(&host, &cache, &next);
    assert_eq!(reply.status, 200, "{}", reply.body);
    let answer = reply.json();
    assert_eq!(answer["version"], 1, "the seeded document was version 0");
    assert_eq!(answer["sha256"], hash_key(&next), "the SHA-256 of the stored bytes");
    assert_eq!(answer["rollback_of"], Value::Null);
    assert_eq!(answer["summary"]["routes"], 2);
    assert_eq!(answer["summary"]["providers"], 2);
    assert_eq!(reply.header("etag"), Some("\"v1\""));

    assert_eq!(stored(&host, "config"), Some(next.clone()));
    assert_eq!(stored(&host, "config/v/1"), Some(next));
    assert_eq!(stored(&host, "config/v/0"), Some(document(&["alpha"])), "the seeded document is kept");
    let beta = chat(&host, &cache, "beta");
    assert_eq!(beta.status, 200, "this instance's cached configuration was cleared: {}", beta.body);
    assert_eq!(beta.json()["choices"][0]["message"]["content"], "ping");
}

#[test]
fn a_document_with_an_unknown_field_is_a_400_naming_it_and_the_previous_one_keeps_serving() {
    let host = host();
    let cache = ConfigCache::default();
    let mut bad: Value = serde_json::from_str(&document(&["beta"])).unwrap();
    bad["providers"]["openai"]["base_ur"] = json!("http://typo.test");
    let reply = put(&host, &cache, &bad.to_string());
    assert_eq!(reply.status, 400);
    let error = reply.error();
    assert_eq!(error["type"], "invalid_request_error");
    assert_eq!(error["code"], "invalid_config");
    assert_eq!(error["param"], "providers.openai.base_ur");
    assert!(error["message"].as_str().unwrap().contains("base_ur"), "{error}");

    assert_eq!(stored(&host, "config"), Some(document(&["alpha"])));
    assert!(kept_versions(&host).is_empty() && stored(&host, "config/history").is_none());
    assert_eq!(chat(&host, &cache, "alpha").status, 200);
    assert_eq!(chat(&host, &cache, "beta").status, 404);
}

#[test]
fn a_document_whose_cedar_policy_does_not_validate_is_a_400_naming_the_policy() {
    let host = host();
    let cache = ConfigCache::default();
    let mut bad: Value = serde_json::from_str(&document(&["beta"])).unwrap();
    bad["routes"]["beta"]["policies"] = json!([{"id": "typo", "cedar":
        "forbid(principal, action == Gateway::Action::\"process_prompt\", resource) when { context.pii_cuont > 0 };"}]);
    let reply = put(&host, &cache, &bad.to_string());
    assert_eq!(reply.status, 400, "{}", reply.body);
    let error = reply.error();
    assert_eq!(error["code"], "invalid_config");
    assert_eq!(error["param"], "routes.beta.policies[0].cedar");
    assert!(error["message"].as_str().unwrap().contains("pii_cuont"), "{error}");

    assert_eq!(stored(&host, "config"), Some(document(&["alpha"])));
    assert_eq!(chat(&host, &cache, "alpha").status, 200, "the previous document keeps serving");
    let (_, versions) = history(&host, &cache);
    assert_eq!(versions, [0]);
}

#[test]
fn validate_checks_a_document_and_stores_nothing() {
    let host = host();
    let cache = ConfigCache::default();
    let before = host.kv.borrow().clone();
    let valid = admin(&host, &cache, "POST", "/admin/config/validate", &document(&["alpha", "beta", "gamma"]));
    assert_eq!(valid.status, 200, "{}", valid.body);
    assert_eq!(valid.json()["valid"], true);
    assert_eq!(valid.json()["summary"]["routes"], 3);

    let invalid = admin(&host, &cache, "POST", "/admin/config/validate", r#"{"version": 2}"#);
    assert_eq!(invalid.status, 400);
    assert_eq!(invalid.error()["code"], "invalid_config");
    assert_eq!(invalid.error()["param"], "version");

    assert_eq!(*host.kv.borrow(), before, "the store is untouched");
    assert_eq!(chat(&host, &cache, "beta").status, 404);
}

#[test]
fn get_returns_the_served_document_with_secret_shaped_values_masked() {
    let host = host();
    let cache = ConfigCache::default();
    assert_eq!(GITHUB_SHAPED.len(), 4 + 36);
    let mut pasted: Value = serde_json::from_str(&document(&["alpha"])).unwrap();
    pasted["providers"]["openai"]["headers"] =
        json!({"x-org-token": OPENAI_SHAPED, "x-github": GITHUB_SHAPED, "x-team": "search"});
    let pushed = put(&host, &cache, &pasted.to_string());
    assert_eq!(pushed.status, 200, "{}", pushed.body);

    let reply = admin(&host, &cache, "GET", "/admin/config", "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("etag"), Some("\"v1\""));
    let served = reply.json();
    let headers = &served["providers"]["openai"]["headers"];
    assert_eq!(headers["x-org-token"], "[REDACTED:secret]", "a credential-named header is masked whole");
    assert_eq!(headers["x-github"], "[REDACTED:github_token]");
    assert_eq!(headers["x-team"], "search", "values that are not secret-shaped are kept");
    assert_eq!(served["providers"]["openai"]["api_key_secret"], "openai_api_key", "a secret's name is not its value");
    assert_eq!(served["keys"][0]["sha256"], hash_key(USER_KEY));
    assert_eq!(served["routes"], json!({"alpha": {"models": ["demo/echo-1"]}}));

    let (listed, _) = history(&host, &cache);
    for text in [&reply.body, &pushed.body, &listed.to_string()] {
        for secret in [OPENAI_SHAPED, GITHUB_SHAPED, ADMIN_KEY, OPENAI_SECRET] {
            assert!(!text.contains(secret), "`{secret}` in {text}");
        }
    }
    assert_eq!(stored(&host, "config"), Some(pasted.to_string()), "masking is for reading only");
}

#[test]
fn get_on_a_seeded_store_returns_it_as_version_0_and_on_an_empty_store_is_a_404() {
    let host = host();
    let cache = ConfigCache::default();
    let reply = admin(&host, &cache, "GET", "/admin/config", "");
    assert_eq!(reply.status, 200);
    assert_eq!(reply.header("etag"), Some("\"v0\""));
    assert_eq!(reply.json(), serde_json::from_str::<Value>(&document(&["alpha"])).unwrap());

    let empty = host_seeded(None);
    let reply = admin(&empty, &cache, "GET", "/admin/config", "");
    assert_eq!(reply.status, 404);
    assert!(reply.error()["message"].as_str().unwrap().contains("PUT /admin/config"));
}

#[test]
fn history_lists_the_versions_newest_first_with_a_seeded_document_as_version_0() {
    let host = host();
    let cache = ConfigCache::default();
    let (listed, versions) = history(&host, &cache);
    assert_eq!(versions, [0]);
    assert_eq!(listed["current"], 0);
    assert_eq!(listed["versions"][0]["sha256"], hash_key(&document(&["alpha"])));
    assert_eq!(listed["versions"][0]["bytes"], document(&["alpha"]).len());

    host.now.set(host.now.get() + 1_000);
    assert_eq!(put(&host, &cache, &document(&["beta"])).status, 200);
    host.now.set(host.now.get() + 1_000);
    assert_eq!(put(&host, &cache, &document(&["gamma"])).status, 200);
    let (listed, versions) = history(&host, &cache);
    assert_eq!(versions, [2, 1, 0]);
    assert_eq!(listed["current"], 2);
    assert_eq!(listed["versions"][0]["sha256"], hash_key(&document(&["gamma"])));
    assert_eq!(listed["versions"][0]["stored_at_ms"], host.now.get());
    assert_eq!(listed["versions"][1]["stored_at_ms"], host.now.get() - 1_000);
    assert!(listed["versions"].as_array().unwrap().iter().all(|v| v.get("rollback_of").is_none()));
}

#[test]
fn a_rollback_stores_an_earlier_version_as_the_next_one_and_traffic_follows() {
    let host = host();
    let cache = ConfigCache::default();
    assert_eq!(put(&host, &cache, &document(&["beta"])).status, 200);
    assert_eq!(chat(&host, &cache, "alpha").status, 404);
    assert_eq!(chat(&host, &cache, "beta").status, 200);

    let reply = rollback(&host, &cache, 0);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["version"], 2);
    assert_eq!(reply.json()["rollback_of"], 0);
    assert_eq!(reply.header("etag"), Some("\"v2\""));
    assert_eq!(stored(&host, "config"), Some(document(&["alpha"])));
    assert_eq!(chat(&host, &cache, "alpha").status, 200, "traffic follows at once");
    assert_eq!(chat(&host, &cache, "beta").status, 404);

    let (listed, versions) = history(&host, &cache);
    assert_eq!(versions, [2, 1, 0]);
    assert_eq!(listed["versions"][0]["rollback_of"], 0);
    assert_eq!(listed["versions"][0]["sha256"], listed["versions"][2]["sha256"]);

    let forward = rollback(&host, &cache, 1);
    assert_eq!((forward.status, forward.json()["version"].as_u64()), (200, Some(3)));
    assert_eq!(chat(&host, &cache, "beta").status, 200, "a rollback can also go forward again");
}

#[test]
fn a_rollback_to_a_version_never_stored_is_a_404_and_a_malformed_one_a_400() {
    let host = host();
    let cache = ConfigCache::default();
    assert_eq!(put(&host, &cache, &document(&["beta"])).status, 200);
    let unknown = rollback(&host, &cache, 42);
    assert_eq!(unknown.status, 404);
    assert!(unknown.error()["message"].as_str().unwrap().contains("version 42 is not kept"));

    let malformed = admin(&host, &cache, "POST", "/admin/config/rollback", r#"{"version": "one"}"#);
    assert_eq!(malformed.status, 400);
    assert_eq!(malformed.error()["param"], "version");
    assert_eq!(stored(&host, "config"), Some(document(&["beta"])), "nothing changed");
    assert_eq!(history(&host, &cache).1, [1, 0]);
}

#[test]
fn only_the_last_ten_versions_are_kept() {
    let host = host_seeded(None);
    let cache = ConfigCache::default();
    for n in 1..=12 {
        let reply = put(&host, &cache, &document(&[&format!("r{n}")]));
        assert_eq!(reply.json()["version"], n);
    }
    let (listed, versions) = history(&host, &cache);
    assert_eq!(versions, (3..=12).rev().collect::<Vec<u64>>());
    assert_eq!(listed["current"], 12);
    let mut kept = kept_versions(&host);
    kept.sort_by_key(|k| k["config/v/".len()..].parse::<u64>().unwrap());
    assert_eq!(kept, (3..=12).map(|n| format!("config/v/{n}")).collect::<Vec<_>>(), "v1 and v2 are deleted");

    assert_eq!(rollback(&host, &cache, 2).status, 404, "a pruned version cannot come back");
    let oldest = rollback(&host, &cache, 3);
    assert_eq!(oldest.status, 200, "{}", oldest.body);
    assert_eq!(chat(&host, &cache, "r3").status, 200);
    assert!(stored(&host, "config/v/3").is_none(), "stored again as v13, the oldest kept copy is pruned");
    assert_eq!(history(&host, &cache).1, (4..=13).rev().collect::<Vec<u64>>());
}

#[test]
fn a_seeded_version_0_is_pruned_like_any_other() {
    let host = host();
    let cache = ConfigCache::default();
    for n in 1..=12 {
        assert_eq!(put(&host, &cache, &document(&[&format!("r{n}")])).status, 200);
    }
    assert_eq!(history(&host, &cache).1, (3..=12).rev().collect::<Vec<u64>>());
    for gone in ["config/v/0", "config/v/1", "config/v/2"] {
        assert!(stored(&host, gone).is_none(), "{gone}");
    }
}

#[test]
fn a_put_with_a_stale_if_match_is_a_412_and_stores_nothing() {
    let host = host();
    let cache = ConfigCache::default();
    let put_if = |document: &str, etag: &str| {
        request(&host, &cache, "PUT", "/admin/config", &[BEARER_ADMIN, ("if-match", etag)], document)
    };
    let first = put_if(&document(&["beta"]), "\"v0\"");
    assert_eq!(first.status, 200, "{}", first.body);
    assert_eq!(first.header("etag"), Some("\"v1\""));

    let stale = put_if(&document(&["gamma"]), "\"v0\"");
    assert_eq!(stale.status, 412);
    assert_eq!(stale.error()["code"], "version_mismatch");
    assert!(stale.error()["message"].as_str().unwrap().contains("\"v1\""), "{}", stale.body);
    assert_eq!(stored(&host, "config"), Some(document(&["beta"])));
    assert_eq!(history(&host, &cache).1, [1, 0]);

    assert_eq!(put_if(&document(&["gamma"]), "\"v1\"").status, 200);
    assert_eq!(put_if(&document(&["delta"]), "*").status, 200, "`*` matches any current version");
    assert_eq!(history(&host, &cache).1, [3, 2, 1, 0]);
}

#[test]
fn an_unknown_admin_path_is_a_404_and_a_wrong_method_a_405() {
    let host = host();
    let cache = ConfigCache::default();
    for path in ["/admin/nope", "/admin/config/versions", "/admin/config/history/1"] {
        assert_eq!(admin(&host, &cache, "GET", path, "").status, 404, "{path}");
    }
    for (method, path) in [
        ("DELETE", "/admin/config"),
        ("POST", "/admin/config"),
        ("GET", "/admin/config/validate"),
        ("PUT", "/admin/config/history"),
        ("GET", "/admin/config/rollback"),
    ] {
        let reply = admin(&host, &cache, method, path, "{}");
        assert_eq!(reply.status, 405, "{method} {path}");
        assert_eq!(reply.error()["code"], "method_not_allowed");
    }
    assert_eq!(admin(&host, &cache, "GET", "/admin/config/", "").status, 200, "a trailing slash is the same path");
    assert_eq!(stored(&host, "config"), Some(document(&["alpha"])));
}

#[test]
fn a_broken_stored_document_can_be_replaced_through_the_admin_api() {
    let host = host_seeded(Some(r#"{"version": 1, "providers": {"x": {"type": "nope"}}}"#));
    let cache = ConfigCache::default();
    assert_eq!(chat(&host, &cache, "alpha").status, 503, "traffic has no usable configuration");
    let reply = put(&host, &cache, &document(&["alpha"]));
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(chat(&host, &cache, "alpha").status, 200);
}

#[test]
fn every_version_history_lists_can_be_rolled_back_to() {
    let host = host();
    let cache = ConfigCache::default();
    assert_eq!(history(&host, &cache).1, [0]);
    let reply = rollback(&host, &cache, 0);
    assert_eq!(reply.status, 200, "{}", reply.body);
    assert_eq!(reply.json()["rollback_of"], 0);
}

#[test]
fn get_masks_credentials_that_have_no_recognisable_prefix() {
    let host = host();
    let cache = ConfigCache::default();
    let mut pasted: Value = serde_json::from_str(&document(&["alpha"])).unwrap();
    pasted["providers"]["openai"]["headers"] = json!({"x-api-key": "8c1f3b7e9d2a4f6b0e5c7a9d1f3b5e7c"});
    pasted["providers"]["openai"]["base_url"] = json!("https://admin:hunter2hunter2@up.test/v1");
    assert_eq!(put(&host, &cache, &pasted.to_string()).status, 200);
    let reply = admin(&host, &cache, "GET", "/admin/config", "");
    assert!(!reply.body.contains("8c1f3b7e9d2a4f6b0e5c7a9d1f3b5e7c"), "{}", reply.body);
    assert!(!reply.body.contains("hunter2hunter2"), "{}", reply.body);
}

#[test]
fn a_push_stores_its_policies_compiled_and_a_cold_instance_loads_them_without_parsing() {
    let host = host();
    let cache = ConfigCache::default();
    let mut guarded: Value = serde_json::from_str(&document(&["beta"])).unwrap();
    guarded["telemetry"] = json!({"log_traces": true});
    guarded["routes"]["beta"]["policies"] = json!([{"id": "no-demo", "cedar":
        "forbid(principal, action == Gateway::Action::\"process_prompt\", resource) when { context.model like \"demo/*\" };"}]);
    let reply = put(&host, &cache, &guarded.to_string());
    assert_eq!(reply.status, 200, "{}", reply.body);
    let compiled =
        host.kv.borrow().get(gateway_core::policy::COMPILED_KV_KEY).cloned().expect("compiled policies stored");
    let config = gateway_core::config::Config::from_json(guarded.to_string().as_bytes()).unwrap();
    let compiled = gateway_core::policy::CompiledPolicies::new(compiled).unwrap();
    let (loaded, _) = config.policies_compiled(gateway_core::policy::Scope::Route("beta"), Some(&compiled)).unwrap();
    assert_eq!((loaded.compiled_sets(), loaded.parsed_sets()), (1, 0));

    // A fresh cache is a fresh Spin instance: the policy decides, loaded from the compiled form.
    support::run_deferred(&host);
    host.logs.borrow_mut().clear();
    let denied = chat(&host, &ConfigCache::default(), "beta");
    assert_eq!(denied.status, 403, "{}", denied.body);
    assert!(denied.error_message().contains("no-demo"), "{}", denied.body);
    support::run_deferred(&host);
    let trace = host.logs.borrow().iter().find(|l| l.contains("\"msg\":\"trace\"")).cloned().expect("a trace line");
    assert!(trace.contains(r#"{"key":"gateway.policy.sets_compiled","value":{"intValue":"1"}}"#), "{trace}");
    assert!(trace.contains(r#"{"key":"gateway.policy.sets_parsed","value":{"intValue":"0"}}"#), "{trace}");

    // A store whose compiled form is gone (a document put by hand): parsed, same decision.
    host.kv.borrow_mut().remove(gateway_core::policy::COMPILED_KV_KEY);
    host.logs.borrow_mut().clear();
    assert_eq!(chat(&host, &ConfigCache::default(), "beta").status, 403);
    support::run_deferred(&host);
    let trace = host.logs.borrow().iter().find(|l| l.contains("\"msg\":\"trace\"")).cloned().expect("a trace line");
    assert!(trace.contains(r#"{"key":"gateway.policy.sets_parsed","value":{"intValue":"1"}}"#), "{trace}");
}
