//! The pure half of the exact-match response cache for `POST /v1/chat/completions`: the key, the
//! stored entry, and replaying a cached whole completion as a chunk stream, so a streamed request
//! can be answered from a response that was stored unstreamed. Storage and the request path live
//! elsewhere; nothing here reads a clock or touches the store.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::openai::{ChatChunk, ChunkChoice};
use crate::providers::StreamEvent;

/// Pieces of replayed text are at most this many bytes, like a provider's token-sized deltas.
const PIECE_BYTES: usize = 64;

/// Hashed ahead of every key, so a change of the encoding below can never collide with old entries.
const KEY_DOMAIN: &[u8] = b"gateway/response-cache/chat/v1\0";

/// What a cache entry is shared across: the route (or none), the model the client named, and the
/// principal unless the route shares entries across principals.
#[derive(Debug, Clone, Copy)]
pub struct CacheScope<'a> {
    pub route: Option<&'a str>,
    pub model: &'a str,
    pub principal: Option<&'a str>,
}

/// The request body in canonical form: object keys sorted at every depth, no insignificant
/// whitespace, and without the top-level fields that change only the delivery, not the answer
/// (`stream`, `stream_options`).
#[must_use]
pub fn canonical(body: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    write_canonical(body, &["stream", "stream_options"], &mut out);
    out
}

/// Sorts keys explicitly (serde_json's map order depends on its `preserve_order` feature); `skip`
/// names keys left out at this depth only. Leaves use serde_json's compact form, which cannot fail.
fn write_canonical(value: &Value, skip: &[&str], out: &mut Vec<u8>) {
    match value {
        Value::Object(map) => {
            let mut entries: Vec<_> = map.iter().filter(|(k, _)| !skip.contains(&k.as_str())).collect();
            entries.sort_unstable_by(|a, b| a.0.cmp(b.0));
            out.push(b'{');
            for (i, (key, item)) in entries.into_iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                out.extend(serde_json::to_vec(key).unwrap_or_default());
                out.push(b':');
                write_canonical(item, &[], out);
            }
            out.push(b'}');
        }
        Value::Array(items) => {
            out.push(b'[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(b',');
                }
                write_canonical(item, &[], out);
            }
            out.push(b']');
        }
        leaf => out.extend(serde_json::to_vec(leaf).unwrap_or_default()),
    }
}

/// The store key: `chat/` and the lowercase hex SHA-256 of the scope and the canonical body, each
/// part length-prefixed and each optional part tagged, so no two distinct inputs share an encoding.
#[must_use]
pub fn key(scope: &CacheScope<'_>, body: &Value) -> String {
    let mut hasher = Sha256::new();
    hasher.update(KEY_DOMAIN);
    hash_optional(&mut hasher, scope.route);
    hash_part(&mut hasher, scope.model.as_bytes());
    hash_optional(&mut hasher, scope.principal);
    hash_part(&mut hasher, &canonical(body));
    format!("chat/{}", crate::auth::hex(&hasher.finalize()))
}

fn hash_part(hasher: &mut Sha256, bytes: &[u8]) {
    hasher.update((bytes.len() as u64).to_be_bytes());
    hasher.update(bytes);
}

/// A missing value is tag 0; a present one (even empty) is tag 1 and the value.
fn hash_optional(hasher: &mut Sha256, value: Option<&str>) {
    match value {
        None => hasher.update([0u8]),
        Some(text) => {
            hasher.update([1u8]);
            hash_part(hasher, text.as_bytes());
        }
    }
}

/// A stored answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CacheEntry {
    pub stored_at_ms: u64,
    pub expires_at_ms: u64,
    /// The provider name that produced it (`x-gateway-provider` on a hit).
    pub provider: String,
    /// The `chat.completion` object as delivered to the client.
    pub completion: Value,
}

impl CacheEntry {
    /// An entry stored at `now_ms` that lives `ttl_seconds` (saturating at the end of time).
    #[must_use]
    pub fn new(now_ms: u64, ttl_seconds: u64, provider: &str, completion: Value) -> Self {
        CacheEntry {
            stored_at_ms: now_ms,
            expires_at_ms: now_ms.saturating_add(ttl_seconds.saturating_mul(1000)),
            provider: provider.to_owned(),
            completion,
        }
    }

    /// Only expiry matters: a host clock behind the store time still serves the entry.
    #[must_use]
    pub fn is_fresh(&self, now_ms: u64) -> bool {
        now_ms < self.expires_at_ms
    }

    /// Whole seconds since it was stored, for an `Age` header (0 when the clock is behind).
    #[must_use]
    pub fn age_seconds(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.stored_at_ms) / 1000
    }

    /// The entry as JSON, for the store.
    #[must_use]
    pub fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    /// `None` when the bytes are not an entry: a corrupt entry is a miss, not an error.
    #[must_use]
    pub fn decode(bytes: &[u8]) -> Option<CacheEntry> {
        serde_json::from_slice(bytes).ok()
    }
}

/// Whether a whole completion may be stored: a `chat.completion` with at least one choice, every
/// one finished by `stop`, `length` or `tool_calls` (a filtered or unfinished answer is not kept).
#[must_use]
pub fn cacheable(completion: &Value) -> bool {
    let finished = |choice: &Value| matches!(choice["finish_reason"].as_str(), Some("stop" | "length" | "tool_calls"));
    completion["object"] == "chat.completion"
        && completion["choices"].as_array().is_some_and(|choices| !choices.is_empty() && choices.iter().all(finished))
}

/// A chunk's frame: the completion's `id`, `created`, `model` and `system_fingerprint` (when it has
/// one) around `choices`. Built here, not by [`crate::openai::ChunkHeader`], which knows only index 0
/// and no fingerprint, and re-derives usage where a replay must copy it verbatim.
fn frame(completion: &Value, choices: Vec<ChunkChoice>) -> ChatChunk {
    let mut rest = serde_json::Map::new();
    rest.insert("id".into(), completion["id"].clone());
    rest.insert("object".into(), "chat.completion.chunk".into());
    rest.insert("created".into(), completion["created"].clone());
    rest.insert("model".into(), completion["model"].clone());
    if let Some(fingerprint) = completion.get("system_fingerprint") {
        rest.insert("system_fingerprint".into(), fingerprint.clone());
    }
    ChatChunk { rest, choices, usage: None }
}

/// A cached completion replayed as the stream a provider would have sent: per choice (in index
/// order) the role, reasoning, content in pieces of at most 64 bytes, refusal, one chunk per tool
/// call and the finish reason; then the usage chunk (copied verbatim) if there is usage, and Done.
#[must_use]
pub fn replay(completion: &Value) -> Vec<StreamEvent> {
    let chunk = |index: u64, delta: Value, finish_reason: &Value, logprobs: &Value| {
        let delta = match delta {
            Value::Object(delta) => delta,
            _ => serde_json::Map::new(),
        };
        let finish_reason = finish_reason.as_str().map(str::to_owned);
        let rest = serde_json::Map::from_iter([("logprobs".to_owned(), logprobs.clone())]);
        StreamEvent::Chunk(frame(completion, vec![ChunkChoice { index, delta, finish_reason, rest }]))
    };
    let mut choices: Vec<(u64, &Value)> = completion["choices"]
        .as_array()
        .map(|choices| choices.iter().enumerate().map(|(i, c)| (c["index"].as_u64().unwrap_or(i as u64), c)).collect())
        .unwrap_or_default();
    choices.sort_by_key(|(index, _)| *index);

    let mut events = Vec::new();
    for (index, choice) in choices {
        let message = &choice["message"];
        let delta = |delta: Value| chunk(index, delta, &Value::Null, &Value::Null);
        events.push(delta(json!({"role": "assistant", "content": ""})));
        let text = |field: &str| message[field].as_str().filter(|s| !s.is_empty());
        if let Some(reasoning) = text("reasoning_content") {
            events.extend(pieces(reasoning).map(|piece| delta(json!({"reasoning_content": piece}))));
        }
        if let Some(content) = text("content") {
            events.extend(pieces(content).map(|piece| delta(json!({"content": piece}))));
        }
        if let Some(refusal) = text("refusal") {
            events.push(delta(json!({"refusal": refusal})));
        }
        for (i, call) in message["tool_calls"].as_array().into_iter().flatten().enumerate() {
            let function = &call["function"];
            let call = json!({"index": i, "id": call["id"], "type": "function",
                              "function": {"name": function["name"], "arguments": function["arguments"]}});
            events.push(delta(json!({"tool_calls": [call]})));
        }
        // Log probabilities, if the answer has them, arrive whole with the finish reason.
        events.push(chunk(index, json!({}), &choice["finish_reason"], &choice["logprobs"]));
    }
    if let Some(usage) = completion.get("usage").filter(|u| u.is_object()) {
        let mut last = frame(completion, Vec::new());
        last.usage = Some(usage.clone());
        events.push(StreamEvent::Chunk(last));
    }
    events.push(StreamEvent::Done);
    events
}

/// Splits text into pieces of at most [`PIECE_BYTES`] bytes on char boundaries, cutting after the
/// last space of a piece when it has one, so replayed deltas look like words arriving.
fn pieces(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let mut cut = rest.len().min(PIECE_BYTES);
        while !rest.is_char_boundary(cut) {
            cut -= 1;
        }
        if cut < rest.len() {
            let window = rest.get(..cut).unwrap_or_default();
            if let Some(space) = window.rfind(' ').filter(|&i| i > 0) {
                cut = space + 1;
            }
        }
        // A char is at most 4 bytes, so `cut` is never 0 here; the fallback only guards the loop.
        let (piece, tail) = rest.split_at_checked(cut.max(1)).unwrap_or((rest, ""));
        rest = tail;
        Some(piece)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope<'a>(route: Option<&'a str>, model: &'a str, principal: Option<&'a str>) -> CacheScope<'a> {
        CacheScope { route, model, principal }
    }

    fn chunks(events: &[StreamEvent]) -> Vec<Value> {
        events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Chunk(c) => Some(c.to_value()),
                _ => None,
            })
            .collect()
    }

    fn text_of(events: &[StreamEvent], index: u64, field: &str) -> String {
        chunks(events)
            .iter()
            .filter(|c| c["choices"][0]["index"] == index)
            .filter_map(|c| c["choices"][0]["delta"][field].as_str())
            .collect()
    }

    fn completion(choices: Value, usage: Option<Value>) -> Value {
        let mut c = json!({"id": "chatcmpl-1", "object": "chat.completion", "created": 1700000000,
                           "model": "gpt-x", "system_fingerprint": "fp_1", "choices": choices});
        if let Some(usage) = usage {
            c["usage"] = usage;
        }
        c
    }

    fn text_choice(index: u64, content: &str) -> Value {
        json!({"index": index, "message": {"role": "assistant", "content": content, "refusal": null},
               "finish_reason": "stop", "logprobs": null})
    }

    #[test]
    fn canonical_form_ignores_key_order_at_depth_and_whitespace() {
        let a: Value = serde_json::from_str(
            r#"{"model":"m","messages":[{"role":"user","content":"hi"}],"x":{"b":1,"a":[{"d":2,"c":3}]}}"#,
        )
        .unwrap();
        let b: Value = serde_json::from_str(
            r#"{ "x" : { "a" : [ { "c" : 3 , "d" : 2 } ] , "b" : 1 } ,
                 "messages" : [ { "content" : "hi" , "role" : "user" } ] , "model" : "m" }"#,
        )
        .unwrap();
        assert_eq!(canonical(&a), canonical(&b));
        assert_eq!(
            String::from_utf8(canonical(&a)).unwrap(),
            r#"{"messages":[{"content":"hi","role":"user"}],"model":"m","x":{"a":[{"c":3,"d":2}],"b":1}}"#
        );
    }

    #[test]
    fn canonical_form_drops_stream_fields_but_keeps_user_and_temperature() {
        let body = json!({"model": "m", "stream": true, "stream_options": {"include_usage": true},
                          "user": "u1", "temperature": 0.5});
        assert_eq!(String::from_utf8(canonical(&body)).unwrap(), r#"{"model":"m","temperature":0.5,"user":"u1"}"#);
    }

    #[test]
    fn key_differs_by_route_model_principal_and_body() {
        let body = json!({"model": "m", "messages": []});
        let base = key(&scope(Some("r"), "m", Some("p")), &body);
        assert!(base.starts_with("chat/") && base.len() == 5 + 64);
        assert!(base[5..].chars().all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)));
        assert_ne!(base, key(&scope(Some("r2"), "m", Some("p")), &body));
        assert_ne!(base, key(&scope(Some("r"), "m2", Some("p")), &body));
        assert_ne!(base, key(&scope(Some("r"), "m", Some("p2")), &body));
        assert_ne!(base, key(&scope(Some("r"), "m", Some("p")), &json!({"model": "m", "messages": [], "seed": 1})));
    }

    #[test]
    fn key_tells_missing_from_empty_and_does_not_run_parts_together() {
        let k = |route, model, principal| key(&scope(route, model, principal), &json!({}));
        assert_ne!(k(None, "m", None), k(Some(""), "m", None));
        assert_ne!(k(None, "m", None), k(None, "m", Some("")));
        assert_ne!(k(Some("a"), "bc", None), k(Some("ab"), "c", None));
        assert_ne!(k(None, "ab", Some("c")), k(None, "a", Some("bc")));
    }

    #[test]
    fn key_is_equal_for_reordered_bodies_and_for_stream_true_or_false() {
        let s = scope(Some("r"), "m", None);
        let a = json!({"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": true});
        let b = json!({"stream": false, "messages": [{"content": "hi", "role": "user"}], "model": "m",
                       "stream_options": {"include_usage": true}});
        assert_eq!(key(&s, &a), key(&s, &b));
    }

    #[test]
    fn entry_is_fresh_until_one_millisecond_before_expiry() {
        let entry = CacheEntry::new(10_000, 60, "openai", json!({}));
        assert_eq!(entry.expires_at_ms, 70_000);
        assert!(entry.is_fresh(69_999));
        assert!(!entry.is_fresh(70_000));
        assert!(entry.is_fresh(5_000), "a clock behind the store time still serves the entry");
        assert_eq!(entry.age_seconds(12_999), 2);
        assert_eq!(entry.age_seconds(5_000), 0);
        assert_eq!(CacheEntry::new(u64::MAX - 1, u64::MAX, "p", json!({})).expires_at_ms, u64::MAX);
    }

    #[test]
    fn entry_round_trips_through_encode_and_decode() {
        let entry = CacheEntry::new(1, 2, "groq", completion(json!([text_choice(0, "hi")]), None));
        assert_eq!(CacheEntry::decode(&entry.encode()), Some(entry));
    }

    #[test]
    fn garbage_decodes_to_none() {
        assert_eq!(CacheEntry::decode(b"not json"), None);
        assert_eq!(CacheEntry::decode(br#"{"provider":"x"}"#), None);
        assert_eq!(CacheEntry::decode(&[0xff, 0x00]), None);
    }

    #[test]
    fn cacheable_accepts_finished_completions_and_refuses_the_rest() {
        let with = |finish: Value| {
            completion(json!([{"index": 0, "message": {"content": "x"}, "finish_reason": finish}]), None)
        };
        assert!(cacheable(&with(json!("stop"))));
        assert!(cacheable(&with(json!("length"))));
        assert!(cacheable(&with(json!("tool_calls"))));
        assert!(!cacheable(&with(json!("content_filter"))));
        assert!(!cacheable(&with(Value::Null)));
        assert!(!cacheable(&completion(json!([{"index": 0, "message": {"content": "x"}}]), None)));
        assert!(!cacheable(&completion(json!([]), None)));
        let mut chunk = with(json!("stop"));
        chunk["object"] = json!("chat.completion.chunk");
        assert!(!cacheable(&chunk));
        let two = completion(json!([text_choice(0, "a"), {"index": 1, "finish_reason": "content_filter"}]), None);
        assert!(!cacheable(&two));
    }

    #[test]
    fn replay_of_a_text_completion_reassembles_the_content_and_ends_with_usage_and_done() {
        let usage = json!({"prompt_tokens": 3, "completion_tokens": 5, "total_tokens": 8, "vendor_extra": {"x": 1}});
        let events = replay(&completion(json!([text_choice(0, "Hello from the cache.")]), Some(usage.clone())));
        let all = chunks(&events);
        let frame = |c: &Value| json!([c["id"], c["model"], c["created"], c["object"], c["system_fingerprint"]]);
        let expected = json!(["chatcmpl-1", "gpt-x", 1700000000, "chat.completion.chunk", "fp_1"]);
        assert!(all.iter().all(|c| frame(c) == expected));
        assert_eq!(all[0]["choices"][0]["delta"], json!({"role": "assistant", "content": ""}));
        assert_eq!(text_of(&events, 0, "content"), "Hello from the cache.");
        let finish = &all[all.len() - 2];
        assert_eq!(finish["choices"][0]["finish_reason"], "stop");
        assert_eq!(finish["choices"][0]["delta"], json!({}));
        let last = &all[all.len() - 1];
        assert_eq!(last["choices"], json!([]));
        assert_eq!(last["usage"], usage);
        assert_eq!(events.last(), Some(&StreamEvent::Done));
    }

    #[test]
    fn replay_splits_long_multibyte_text_into_small_pieces_on_char_boundaries() {
        let content = "Café crème brûlée 🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮🍮 naïve façade, déjà vu — ünïcödé "
            .repeat(5)
            + &"é".repeat(100)
            + &"🦀".repeat(40);
        let events = replay(&completion(json!([text_choice(0, &content)]), None));
        let pieces: Vec<String> = chunks(&events)
            .iter()
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().filter(|s| !s.is_empty()).map(str::to_owned))
            .collect();
        assert!(pieces.len() > content.len() / 64);
        assert!(pieces.iter().all(|p| !p.is_empty() && p.len() <= 64), "{pieces:?}");
        assert_eq!(pieces.concat(), content);
        assert!(pieces[0].ends_with(' '), "cuts after a space when the piece has one: {:?}", pieces[0]);
        let odd = "a".to_owned() + &"é".repeat(40);
        assert_eq!(super::pieces(&odd).map(str::len).collect::<Vec<_>>(), [63, 18], "backs off to a char boundary");
    }

    #[test]
    fn replay_of_a_tool_call_completion_yields_each_call_whole() {
        let call = |i: u64, id: &str, name: &str, arguments: &str| {
            json!({"index": i, "id": id, "type": "function",
                   "function": {"name": name, "arguments": arguments}})
        };
        let (a, b) = (call(0, "call_a", "weather", r#"{"city":"Oslo"}"#), call(1, "call_b", "time", "{}"));
        let choice = json!({"index": 0, "finish_reason": "tool_calls",
                            "message": {"role": "assistant", "content": null, "tool_calls": [a, b]}});
        let events = replay(&completion(json!([choice]), None));
        let all = chunks(&events);
        let calls: Vec<&Value> = all.iter().filter_map(|c| c["choices"][0]["delta"]["tool_calls"].get(0)).collect();
        assert_eq!(calls, [&a, &b], "each call in one chunk, its index its position");
        assert_eq!(text_of(&events, 0, "content"), "");
        assert_eq!(all[all.len() - 1]["choices"][0]["finish_reason"], "tool_calls");
    }

    #[test]
    fn replay_of_an_n2_completion_keeps_choice_indexes_in_order() {
        let events = replay(&completion(json!([text_choice(1, "second"), text_choice(0, "first")]), None));
        let indexes: Vec<u64> = chunks(&events).iter().filter_map(|c| c["choices"][0]["index"].as_u64()).collect();
        assert_eq!(indexes.first(), Some(&0));
        assert_eq!(indexes.last(), Some(&1));
        assert!(indexes.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(text_of(&events, 0, "content"), "first");
        assert_eq!(text_of(&events, 1, "content"), "second");
    }

    #[test]
    fn replay_streams_role_reasoning_content_refusal_then_the_finish() {
        let choice = json!({"index": 0, "finish_reason": "stop",
            "message": {"role": "assistant", "content": "no", "reasoning_content": "think", "refusal": "I can't."}});
        let events = replay(&completion(json!([choice]), None));
        let all = chunks(&events);
        let deltas: Vec<&Value> = all.iter().map(|c| &c["choices"][0]["delta"]).collect();
        let expected = [
            json!({"role": "assistant", "content": ""}),
            json!({"reasoning_content": "think"}),
            json!({"content": "no"}),
            json!({"refusal": "I can't."}),
            json!({}),
        ];
        assert_eq!(deltas, expected.iter().collect::<Vec<_>>());
    }

    #[test]
    fn replay_of_a_completion_without_usage_has_no_usage_chunk() {
        let events = replay(&completion(json!([text_choice(0, "hi")]), None));
        assert!(chunks(&events)
            .iter()
            .all(|c| c.get("usage").is_none() && c["choices"].as_array().unwrap().len() == 1));
        assert_eq!(events.last(), Some(&StreamEvent::Done));
    }
}
