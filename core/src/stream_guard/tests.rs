use serde_json::json;

use super::*;

/// Redacts PII in text; denies text with a secret; denies the tool `drop_db`.
#[derive(Default)]
struct Rules {
    asked: usize,
}

impl Decide for Rules {
    fn decide(&mut self, action: Action, signals: &Signals, tool: Option<(&str, &str)>) -> Verdict {
        self.asked += 1;
        let mut verdict = Verdict::default();
        match action {
            Action::ProcessResponse if signals.secret_count > 0 => verdict.denied_by = Some("no-secrets".into()),
            Action::ProcessResponse if signals.pii_count > 0 => {
                verdict.redact = vec![("redact-pii".into(), vec![Category::Pii])];
            }
            Action::CallTool if tool.is_some_and(|(name, _)| name == "drop_db") => {
                verdict.denied_by = Some("no-drop".into());
            }
            _ => {}
        }
        verdict
    }
}

/// The guard fed and read as JSON, the shape chunks have on the wire.
struct JsonGuard(StreamGuard);

impl JsonGuard {
    fn new(hold_chars: usize, detectors: Detectors) -> Self {
        JsonGuard(StreamGuard::new(hold_chars, detectors))
    }

    fn push(&mut self, chunk: Value, decide: &mut dyn Decide) -> Result<Vec<Value>, Denial> {
        let chunk: ChatChunk = serde_json::from_value(chunk).expect("a chat chunk");
        self.0.push(chunk, decide).map(|chunks| chunks.iter().map(ChatChunk::to_value).collect())
    }

    fn finish(&mut self, decide: &mut dyn Decide) -> Result<Vec<Value>, Denial> {
        self.0.finish(decide).map(|chunks| chunks.iter().map(ChatChunk::to_value).collect())
    }
}

fn text_chunk(text: &str) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"content": text}, "finish_reason": null}]})
}

fn finish_chunk(reason: &str) -> Value {
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {}, "finish_reason": reason}]})
}

fn tool_chunk(index: u64, id: Option<&str>, name: Option<&str>, args: &str) -> Value {
    let mut function = json!({"arguments": args});
    if let Some(name) = name {
        function["name"] = json!(name);
    }
    let mut call = json!({"index": index, "function": function});
    if let Some(id) = id {
        call["id"] = json!(id);
        call["type"] = json!("function");
    }
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": null}]})
}

/// Feeds `pieces` of text then a finish, returning the text the client would see.
fn run_text(guard: &mut JsonGuard, rules: &mut Rules, pieces: &[&str]) -> Result<String, Denial> {
    let mut seen = String::new();
    let mut collect = |chunks: Vec<Value>| {
        for chunk in chunks {
            for choice in chunk["choices"].as_array().unwrap() {
                if let Some(text) = choice["delta"]["content"].as_str() {
                    seen.push_str(text);
                }
            }
        }
    };
    for piece in pieces {
        collect(guard.push(text_chunk(piece), rules)?);
    }
    collect(guard.push(finish_chunk("stop"), rules)?);
    collect(guard.finish(rules)?);
    Ok(seen)
}

#[test]
fn text_is_held_back_by_the_window_and_never_cut_inside_a_token() {
    let mut guard = JsonGuard::new(10, Detectors::ALL);
    let mut rules = Rules::default();
    let out = guard.push(text_chunk("one two three four five"), &mut rules).unwrap();
    // Ten characters back from the end falls inside `three`: the cut moves to its start.
    assert_eq!(out[0]["choices"][0]["delta"]["content"], "one two three");
    // Ten back from the end of " four five sixty-seven" falls inside `sixty-seven`.
    let out = guard.push(text_chunk(" sixty-seven"), &mut rules).unwrap();
    assert_eq!(out[0]["choices"][0]["delta"]["content"], " four five ");
}

/// Allows everything (records nothing).
struct AllowAll;

impl Decide for AllowAll {
    fn decide(&mut self, _: Action, _: &Signals, _: Option<(&str, &str)>) -> Verdict {
        Verdict::default()
    }
}

#[test]
fn a_long_token_is_held_whole_until_it_can_be_recognised() {
    // A token longer than the window: no part of it leaves before it is complete.
    let token = format!("tok_{}", "Ab3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA".repeat(12));
    let mut guard = JsonGuard::new(16, Detectors::ALL);
    let mut seen = String::new();
    for piece in ["token: ", &token[..100], &token[100..300], &token[300..]] {
        for chunk in guard.push(text_chunk(piece), &mut AllowAll).unwrap() {
            seen.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
        }
        assert!(!seen.contains("tok_"), "part of the token left early: {seen}");
    }
    for chunk in guard.push(text_chunk(" and the rest of the message."), &mut AllowAll).unwrap() {
        seen.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
    }
    assert!(seen.contains(&token), "released whole once complete: {seen}");
}

#[test]
fn an_unfinished_finding_is_held_no_more_than_the_cap() {
    let mut guard = JsonGuard::new(16, Detectors::ALL);
    let mut rules = Rules::default();
    let block = format!("-----BEGIN RSA PRIVATE KEY-----\n{}", "QUJD REVG ".repeat(3000));
    let out = guard.push(text_chunk(&block), &mut rules);
    // The secret denies (the rules deny any secret in text) rather than being held forever.
    assert!(out.is_err() || out.unwrap().iter().any(|c| c["choices"][0]["delta"]["content"].is_string()));
}

#[test]
fn reasoning_and_refusal_text_are_guarded_too() {
    let mut guard = JsonGuard::new(8, Detectors::ALL);
    let mut rules = Rules::default();
    let chunk = json!({"id": "c1", "choices": [{"index": 0, "delta": {"reasoning_content": "mail jane.doe@example.com now please"}, "finish_reason": null}]});
    let mut seen = String::new();
    for out in guard.push(chunk, &mut rules).unwrap().into_iter().chain(guard.finish(&mut rules).unwrap()) {
        seen.push_str(out["choices"][0]["delta"]["reasoning_content"].as_str().unwrap_or_default());
    }
    assert_eq!(seen, "mail [REDACTED:email] now please");
}

#[test]
fn a_repeated_name_or_a_new_id_at_the_same_index_does_not_merge_calls() {
    let mut guard = JsonGuard::new(16, Detectors::ALL);
    let mut rules = Rules::default();
    guard.push(tool_chunk(0, Some("call_1"), Some("search"), "{\"q\":"), &mut rules).unwrap();
    guard.push(tool_chunk(0, None, Some("search"), "1}"), &mut rules).unwrap();
    let out = guard.push(tool_chunk(0, Some("call_2"), Some("fetch"), "{}"), &mut rules).unwrap();
    let first = &out[0]["choices"][0]["delta"]["tool_calls"][0];
    assert_eq!((first["id"].as_str(), first["function"]["name"].as_str()), (Some("call_1"), Some("search")));
    assert_eq!(first["function"]["arguments"], "{\"q\":1}");
    let out = guard.push(finish_chunk("tool_calls"), &mut rules).unwrap();
    assert_eq!(out[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "fetch");
}

#[test]
fn an_email_split_across_chunks_is_redacted_before_it_leaves() {
    let mut guard = JsonGuard::new(32, Detectors::ALL);
    let mut rules = Rules::default();
    let pieces = ["Write to jane.", "doe@exa", "mple.com", " for details, or call the office any time this week."];
    let seen = run_text(&mut guard, &mut rules, &pieces).unwrap();
    assert_eq!(seen, "Write to [REDACTED:email] for details, or call the office any time this week.");
}

#[test]
fn a_secret_in_the_stream_denies_before_it_is_delivered() {
    let mut guard = JsonGuard::new(64, Detectors::ALL);
    let mut rules = Rules::default();
    let mut delivered = String::new();
    let pieces = ["Sure, here is the key you asked for: ", "sk-proj-Ab3dE5gH7jK9", "mN1pQ3rS5tU7vW9xY1zA3"];
    let mut denial = None;
    for piece in pieces {
        match guard.push(text_chunk(piece), &mut rules) {
            Ok(chunks) => {
                for chunk in chunks {
                    delivered.push_str(chunk["choices"][0]["delta"]["content"].as_str().unwrap_or_default());
                }
            }
            Err(d) => {
                denial = Some(d);
                break;
            }
        }
    }
    let denial = denial.or_else(|| guard.finish(&mut rules).err()).expect("the secret is denied");
    assert_eq!(denial, Denial { action: Action::ProcessResponse, policy: "no-secrets".into() });
    assert!(!delivered.contains("sk-proj"), "{delivered}");
}

#[test]
fn a_streamed_tool_call_is_held_until_complete_then_delivered_whole() {
    let mut guard = JsonGuard::new(16, Detectors::ALL);
    let mut rules = Rules::default();
    assert!(guard.push(tool_chunk(0, Some("call_1"), Some("search"), ""), &mut rules).unwrap().is_empty());
    assert!(guard.push(tool_chunk(0, None, None, "{\"q\": "), &mut rules).unwrap().is_empty());
    assert!(guard.push(tool_chunk(0, None, None, "\"rust\"}"), &mut rules).unwrap().is_empty());
    let out = guard.push(finish_chunk("tool_calls"), &mut rules).unwrap();
    let choice = &out[0]["choices"][0];
    assert_eq!(choice["finish_reason"], "tool_calls");
    assert_eq!(
        choice["delta"]["tool_calls"],
        json!([{"index": 0, "id": "call_1", "type": "function", "function": {"name": "search", "arguments": "{\"q\": \"rust\"}"}}])
    );
}

#[test]
fn a_denied_tool_call_never_reaches_the_client() {
    let mut guard = JsonGuard::new(16, Detectors::ALL);
    let mut rules = Rules::default();
    assert!(guard.push(tool_chunk(0, Some("call_1"), Some("search"), "{}"), &mut rules).unwrap().is_empty());
    // The second call's first delta completes the first, which is delivered.
    let out = guard.push(tool_chunk(1, Some("call_2"), Some("drop_db"), "{\"name\":"), &mut rules).unwrap();
    assert_eq!(out[0]["choices"][0]["delta"]["tool_calls"][0]["function"]["name"], "search");
    assert!(guard.push(tool_chunk(1, None, None, "\"prod\"}"), &mut rules).unwrap().is_empty());
    let denial = guard.push(finish_chunk("tool_calls"), &mut rules).unwrap_err();
    assert_eq!(denial, Denial { action: Action::CallTool, policy: "no-drop".into() });
}

#[test]
fn usage_chunks_pass_and_unchanged_signals_are_not_decided_twice() {
    let mut guard = JsonGuard::new(4, Detectors::ALL);
    let mut rules = Rules::default();
    let usage = json!({"id": "c1", "choices": [], "usage": {"prompt_tokens": 1, "completion_tokens": 2}});
    assert_eq!(guard.push(usage.clone(), &mut rules).unwrap(), vec![usage]);
    for _ in 0..5 {
        guard.push(text_chunk("plain words "), &mut rules).unwrap();
    }
    assert_eq!(rules.asked, 1, "the same (empty) signals are decided once");
}

#[test]
fn held_text_is_released_when_the_stream_ends_without_a_finish_chunk() {
    let mut guard = JsonGuard::new(100, Detectors::ALL);
    let mut rules = Rules::default();
    assert!(guard.push(text_chunk("short answer"), &mut rules).unwrap().is_empty());
    let out = guard.finish(&mut rules).unwrap();
    assert_eq!(out[0]["choices"][0]["delta"]["content"], "short answer");
    assert_eq!(out[0]["id"], "c1");
}

fn legacy_chunk(name: Option<&str>, args: &str) -> Value {
    let mut function = json!({"arguments": args});
    if let Some(name) = name {
        function["name"] = json!(name);
    }
    json!({"id": "c1", "object": "chat.completion.chunk", "created": 1, "model": "m",
           "choices": [{"index": 0, "delta": {"function_call": function}, "finish_reason": null}]})
}

#[test]
fn a_legacy_function_call_is_held_decided_as_a_tool_call_and_delivered_as_it_came() {
    let mut guard = JsonGuard::new(16, Detectors::ALL);
    let mut rules = Rules::default();
    assert!(guard.push(legacy_chunk(Some("search"), "{\"q\":"), &mut rules).unwrap().is_empty());
    assert!(guard.push(legacy_chunk(None, "\"rust\"}"), &mut rules).unwrap().is_empty());
    let out = guard.push(finish_chunk("function_call"), &mut rules).unwrap();
    let delta = &out[0]["choices"][0]["delta"];
    assert_eq!(delta["function_call"], json!({"name": "search", "arguments": "{\"q\":\"rust\"}"}));
    assert!(delta.get("tool_calls").is_none());

    let mut guard = JsonGuard::new(16, Detectors::ALL);
    assert!(guard.push(legacy_chunk(Some("drop_db"), "{}"), &mut rules).unwrap().is_empty());
    let denial = guard.push(finish_chunk("function_call"), &mut rules).unwrap_err();
    assert_eq!(denial, Denial { action: Action::CallTool, policy: "no-drop".into() });
}

fn audio_chunk(transcript: &str, data: &str) -> Value {
    json!({"id": "c1", "choices": [{"index": 0, "delta": {"audio": {"id": "audio_1", "transcript": transcript, "data": data}},
           "finish_reason": null}]})
}

#[test]
fn a_streamed_spoken_answers_transcript_is_held_and_redacted_like_text_its_audio_data_passing() {
    let mut guard = JsonGuard::new(8, Detectors::ALL);
    let mut rules = Rules::default();
    let mut transcript = String::new();
    let mut data = String::new();
    let pieces = [("mail jane.", "AAA"), ("doe@example.com", "BBB"), (" now please", "CCC")];
    let mut outs: Vec<Value> = Vec::new();
    for (words, audio) in pieces {
        outs.extend(guard.push(audio_chunk(words, audio), &mut rules).unwrap());
    }
    outs.extend(guard.push(finish_chunk("stop"), &mut rules).unwrap());
    outs.extend(guard.finish(&mut rules).unwrap());
    for out in &outs {
        let audio = &out["choices"][0]["delta"]["audio"];
        transcript.push_str(audio["transcript"].as_str().unwrap_or_default());
        data.push_str(audio["data"].as_str().unwrap_or_default());
    }
    assert_eq!(transcript, "mail [REDACTED:email] now please");
    assert_eq!(data, "AAABBBCCC", "audio data passes as it comes");
    // A secret in the transcript denies, as in text.
    let mut guard = JsonGuard::new(8, Detectors::ALL);
    let secret = "the key is sk-proj-Ab3dE5gH7jK9mN1pQ3rS5tU7vW9xY1zA3bC5 ok";
    let denied = guard.push(audio_chunk(secret, "DDD"), &mut rules).and_then(|_| guard.finish(&mut rules));
    assert_eq!(denied.unwrap_err().policy, "no-secrets");
}
