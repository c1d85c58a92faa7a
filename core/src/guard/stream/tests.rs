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
fn run_text(guard: &mut StreamGuard, rules: &mut Rules, pieces: &[&str]) -> Result<String, Denial> {
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
fn text_is_held_back_only_by_the_window() {
    let mut guard = StreamGuard::new(10, Detectors::ALL);
    let mut rules = Rules::default();
    let out = guard.push(text_chunk("0123456789abcdefghij"), &mut rules).unwrap();
    assert_eq!(out[0]["choices"][0]["delta"]["content"], "0123456789");
    assert!(guard.push(text_chunk("klm"), &mut rules).unwrap()[0]["choices"][0]["delta"]["content"] == "abc");
}

#[test]
fn an_email_split_across_chunks_is_redacted_before_it_leaves() {
    let mut guard = StreamGuard::new(32, Detectors::ALL);
    let mut rules = Rules::default();
    let pieces = ["Write to jane.", "doe@exa", "mple.com", " for details, or call the office any time this week."];
    let seen = run_text(&mut guard, &mut rules, &pieces).unwrap();
    assert_eq!(seen, "Write to [REDACTED:email] for details, or call the office any time this week.");
}

#[test]
fn a_secret_in_the_stream_denies_before_it_is_delivered() {
    let mut guard = StreamGuard::new(64, Detectors::ALL);
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
    let mut guard = StreamGuard::new(16, Detectors::ALL);
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
    let mut guard = StreamGuard::new(16, Detectors::ALL);
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
    let mut guard = StreamGuard::new(4, Detectors::ALL);
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
    let mut guard = StreamGuard::new(100, Detectors::ALL);
    let mut rules = Rules::default();
    assert!(guard.push(text_chunk("short answer"), &mut rules).unwrap().is_empty());
    let out = guard.finish(&mut rules).unwrap();
    assert_eq!(out[0]["choices"][0]["delta"]["content"], "short answer");
    assert_eq!(out[0]["id"], "c1");
}
