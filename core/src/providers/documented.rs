//! Golden tests on fixtures that follow each native provider's documented wire shape exactly
//! (`core/fixtures/*/documented_*`): every field the documentation shows, its spacing and its
//! line endings, where the other fixtures are hand-written to the fields the translators read.
//! Anthropic: the full `message_start` (`stop_sequence`, cache token fields, `cache_creation`,
//! `service_tier`) and cumulative `message_delta` usage. Gemini: `usageMetadata` on every chunk,
//! cumulative, and CRLF event separators. Ollama: the documented NDJSON with durations.

use serde_json::Value;

use super::test_support::{chunks, ctx, translate};
use super::{chat_provider, StreamEvent};
use crate::config::ProviderType;

fn stream(kind: ProviderType, body: &str) -> Vec<StreamEvent> {
    let provider = chat_provider(kind).unwrap_or_else(|| unreachable!());
    // Slices of 5 bytes: every CRLF pair and multi-byte boundary is split somewhere.
    translate(provider, ctx("m", "fallback"), body, 5)
}

fn text(events: &[StreamEvent]) -> String {
    chunks(events).iter().filter_map(|c| c["choices"][0]["delta"]["content"].as_str()).collect()
}

fn finish(events: &[StreamEvent]) -> Option<String> {
    chunks(events).iter().find_map(|c| c["choices"][0]["finish_reason"].as_str().map(str::to_owned))
}

fn usage(events: &[StreamEvent]) -> Value {
    chunks(events).iter().rev().find_map(|c| c.get("usage").filter(|u| u.is_object()).cloned()).unwrap_or_default()
}

#[test]
fn anthropics_documented_stream_counts_cached_input_once_and_output_from_the_cumulative_delta() {
    let events = stream(ProviderType::Anthropic, include_str!("../../fixtures/anthropic/documented_stream.sse"));
    assert_eq!(chunks(&events)[0]["id"], "msg_1nZdL29xx5MUA1yADyHTEsnR8uuvGzszyY");
    assert_eq!(text(&events), "Hello!");
    assert_eq!(finish(&events).as_deref(), Some("stop"));
    let usage = usage(&events);
    assert_eq!(usage["prompt_tokens"], 1825, "input plus cache reads, counted once: {usage}");
    assert_eq!(usage["completion_tokens"], 15);
    assert_eq!(usage["total_tokens"], 1840);
    assert_eq!(usage["prompt_tokens_details"]["cached_tokens"], 1800);
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn geminis_documented_stream_with_crlf_separators_takes_the_last_cumulative_usage() {
    let body = include_str!("../../fixtures/gemini/documented_stream.sse");
    assert!(body.contains("}\r\n\r\ndata: "), "the fixture keeps Gemini's CRLF separators");
    let events = stream(ProviderType::Gemini, body);
    assert_eq!(chunks(&events)[0]["id"], "mFBNaN2aN8mTxN8P4Zy1oQk");
    assert_eq!(text(&events), "The sky is blue because of Rayleigh scattering.");
    assert_eq!(finish(&events).as_deref(), Some("stop"));
    let usage = usage(&events);
    // Every chunk repeats the running totals: the last one counts, nothing is summed.
    assert_eq!(usage["prompt_tokens"], 9, "{usage}");
    assert_eq!(usage["completion_tokens"], 22, "10 candidates plus 12 thoughts: {usage}");
    assert_eq!(usage["completion_tokens_details"]["reasoning_tokens"], 12);
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}

#[test]
fn ollamas_documented_stream_reports_its_eval_counts() {
    let events = stream(ProviderType::Ollama, include_str!("../../fixtures/ollama/documented_stream.ndjson"));
    assert_eq!(text(&events), "The sky is blue.");
    assert_eq!(finish(&events).as_deref(), Some("stop"));
    let usage = usage(&events);
    assert_eq!((usage["prompt_tokens"].as_u64(), usage["completion_tokens"].as_u64()), (Some(26), Some(282)));
    assert_eq!(events.last(), Some(&StreamEvent::Done));
}
