//! Helpers shared by the providers' golden tests.

use serde_json::Value;

use super::{ChatProvider, ResponseContext, StreamEvent};

/// A context with fixed values, so expected translations are stable.
pub fn ctx(model: &str, fallback_id: &str) -> ResponseContext {
    ResponseContext {
        created: 1_700_000_000,
        model: model.into(),
        fallback_id: fallback_id.into(),
        base64_embeddings: false,
        custom: None,
    }
}

/// Feeds a fixture body through a provider's stream translator in `slice`-byte pieces (to
/// exercise reassembly across chunk boundaries), then finishes it.
pub fn translate(provider: &dyn ChatProvider, ctx: ResponseContext, body: &str, slice: usize) -> Vec<StreamEvent> {
    let mut translator = provider.chat_stream(ctx);
    let mut out = Vec::new();
    for piece in body.as_bytes().chunks(slice) {
        out.extend(translator.push(piece));
    }
    out.extend(translator.finish());
    out
}

/// The chunk objects among translated events, as JSON.
pub fn chunks(events: &[StreamEvent]) -> Vec<Value> {
    events.iter().filter_map(|e| if let StreamEvent::Chunk(c) = e { Some(c.to_value()) } else { None }).collect()
}
