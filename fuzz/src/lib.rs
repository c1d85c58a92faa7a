//! The fuzz targets: every parser and translator that reads bytes from a client or an upstream.
//! Each takes arbitrary bytes and must neither panic nor hang. `cargo fuzz` runs them
//! (`scripts/fuzz`), and core's `fuzz_corpora` test replays the kept corpora on every
//! `scripts/test` (this file is compiled into that test too, so it names only `gateway_core`,
//! `serde_json` and `http`).

use gateway_core::config::ProviderType;
use gateway_core::providers::{chat_provider, ChatStreamTranslator, ResponseContext};

/// A target: arbitrary bytes in, no panic and no hang.
pub type Target = fn(&[u8]);

/// Every target, by the name of its corpus folder.
pub const TARGETS: &[(&str, Target)] = &[
    ("sse", sse),
    ("ndjson", ndjson),
    ("multipart", multipart),
    ("mcp_message", mcp_message),
    ("chat_stream", chat_stream),
    ("chat_response", chat_response),
    ("responses", responses),
    ("compiled_policies", compiled_policies),
];

/// The input cut into slices as a network would deliver it: the first byte chooses the sizes.
fn slices(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let (seed, mut rest) = match data.split_first() {
        Some((seed, rest)) => (u64::from(*seed) | 1, rest),
        None => (1, data),
    };
    let mut state = seed;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        state = state.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1_442_695_040_888_963_407);
        let n = 1 + usize::try_from((state >> 33) % 97).unwrap_or(0);
        let (head, tail) = rest.split_at(n.min(rest.len()));
        rest = tail;
        Some(head)
    })
}

/// The provider a target reads as, from the input's first byte.
const KINDS: [ProviderType; 4] =
    [ProviderType::Openai, ProviderType::Anthropic, ProviderType::Gemini, ProviderType::Ollama];

fn kind(data: &[u8]) -> ProviderType {
    let pick = usize::from(data.first().copied().unwrap_or(0) >> 6);
    KINDS.get(pick).copied().unwrap_or(ProviderType::Openai)
}

fn context() -> ResponseContext {
    ResponseContext {
        created: 0,
        model: String::new(),
        fallback_id: String::new(),
        base64_embeddings: false,
        custom: None,
    }
}

pub fn sse(data: &[u8]) {
    let mut parser = gateway_core::sse::SseParser::new();
    for slice in slices(data) {
        if let Ok(events) = parser.push(slice) {
            for event in events {
                let _ = event.encode(&event.data);
            }
        }
    }
    let _ = parser.finish();
}

pub fn ndjson(data: &[u8]) {
    let mut parser = gateway_core::ndjson::NdjsonParser::default();
    for slice in slices(data) {
        let _ = parser.push(slice);
    }
    let _ = parser.finish();
}

pub fn multipart(data: &[u8]) {
    let mut scanner = gateway_core::multipart::FieldScanner::new("b", "model");
    let mut seen = 0;
    for slice in slices(data) {
        seen += slice.len();
        let Some(so_far) = data.get(1..=seen) else { break };
        if let gateway_core::multipart::Scan::Found(range) = scanner.scan(so_far) {
            let _ = gateway_core::multipart::with_field(so_far, "b", "model", Some(range), "m");
            break;
        }
    }
    let _ = gateway_core::multipart::boundary(&String::from_utf8_lossy(data));
}

pub fn mcp_message(data: &[u8]) {
    use gateway_core::mcp::{era, Message};
    let Ok(mut message) = Message::parse(data) else { return };
    let _ = (message.kind(), message.name(), era::era_of(Some("2025-06-18"), &message));
    let enabled = vec!["a".to_owned()];
    if let Some(result) = message.result_mut() {
        gateway_core::mcp::ToolGate { enabled: &enabled }.filter_list(result);
        era::to_legacy_result(result);
        era::to_modern_result("tools/list", result, None);
        let _ = era::initialize_from_discover(result, "2025-06-18");
        let _ = era::discover_from_initialize(result);
    }
    era::to_legacy_request(&mut message);
    era::to_modern_request(&mut message, &serde_json::json!({}), &serde_json::json!({}));
    let _ = message.to_bytes();
    let text = String::from_utf8_lossy(data);
    let keys = gateway_core::mcp::SessionKeys::new(b"k");
    let _ = gateway_core::mcp::GatewaySession::open(&text, &keys, "s", "o", 0);
    let _ = gateway_core::mcp::jwt_subject(&text);
}

pub fn chat_stream(data: &[u8]) {
    let Some(provider) = chat_provider(kind(data)) else { return };
    let mut translator: Box<dyn ChatStreamTranslator> = provider.chat_stream(context());
    for slice in slices(data) {
        let _ = translator.push(slice);
    }
    let _ = translator.finish();
}

pub fn chat_response(data: &[u8]) {
    let Some(provider) = chat_provider(kind(data)) else { return };
    let body = data.get(1..).unwrap_or_default();
    let _ = provider.chat_response(body, &context());
    let _ = provider.error("p", http::StatusCode::TOO_MANY_REQUESTS, body);
}

pub fn responses(data: &[u8]) {
    use gateway_core::responses::{from_completion, to_chat, Envelope, ResponsesStream};
    let request = serde_json::Map::new();
    // A Responses request from a client, or a chat answer (whole or streamed) from an upstream.
    if let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(data) {
        let _ = to_chat(&body);
        let _ = from_completion(&serde_json::Value::Object(body.clone()), &Envelope::new(&body, "resp_f".into(), 0));
    }
    let mut translator = ResponsesStream::new(Envelope::new(&request, "resp_f".into(), 0));
    for slice in slices(data) {
        let _ = translator.push(slice);
    }
    let _ = translator.finish();
}

pub fn compiled_policies(data: &[u8]) {
    let _ = gateway_core::policy::decode_unchecked(data);
}
