//! The built-in `echo` provider: answers in-process with the last user message, streamed or not.
//! No network and no key, so a fresh gateway answers its first request and policies can be tried
//! without spending tokens. Token counts are whitespace-separated words.

use serde_json::{json, Value};

use crate::openai::{ChatRequest, ChunkHeader, MessageContent, Role, Usage};
use crate::providers::StreamEvent;

fn words(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

fn reply_text(request: &ChatRequest) -> String {
    request
        .messages
        .iter()
        .rev()
        .find(|m| m.role == Role::User)
        .and_then(|m| m.content.as_ref())
        .map(MessageContent::text)
        .unwrap_or_default()
}

fn usage(request: &ChatRequest, reply: &str) -> Usage {
    let prompt = request.messages.iter().filter_map(|m| m.content.as_ref()).map(|c| words(&c.text())).sum();
    Usage { prompt_tokens: prompt, completion_tokens: words(reply), ..Usage::default() }
}

/// A whole `chat.completion`.
pub fn completion(request: &ChatRequest, model: &str, id: &str, created: u64) -> Value {
    let reply = reply_text(request);
    json!({
        "id": id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{
            "index": 0,
            "message": {"role": "assistant", "content": reply, "refusal": null},
            "finish_reason": "stop",
            "logprobs": null,
        }],
        "usage": usage(request, &reply).to_json(),
    })
}

/// The same answer as a stream of chunks, one word (with its leading space) per chunk, then usage.
pub fn stream(request: &ChatRequest, model: &str, id: &str, created: u64) -> Vec<StreamEvent> {
    let reply = reply_text(request);
    let header = ChunkHeader { id: id.to_owned(), model: model.to_owned(), created };
    let mut events = vec![StreamEvent::Chunk(header.chunk(json!({"role": "assistant", "content": ""}), None))];
    let mut start = 0;
    for (i, _) in reply.match_indices(' ').chain(std::iter::once((reply.len(), ""))) {
        if i > start {
            let piece = reply.get(start..i).unwrap_or_default();
            events.push(StreamEvent::Chunk(header.chunk(json!({"content": piece}), None)));
            start = i;
        }
    }
    events.push(StreamEvent::Chunk(header.chunk(json!({}), Some("stop"))));
    // Always produced, like a provider asked for usage; the pipeline strips it unless the client asked.
    events.push(StreamEvent::Chunk(header.usage_chunk(usage(request, &reply))));
    events.push(StreamEvent::Done);
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn echo_stream_reassembles_to_the_last_user_message() {
        let req: ChatRequest = serde_json::from_value(json!({"model": "echo/x", "messages": [
            {"role": "user", "content": "first"}, {"role": "assistant", "content": "ok"},
            {"role": "user", "content": "hello  edge world"}], "stream_options": {"include_usage": true}}))
        .unwrap();
        let events = stream(&req, "x", "id", 0);
        let text: String = events
            .iter()
            .filter_map(|e| match e {
                StreamEvent::Chunk(c) => c.to_value()["choices"][0]["delta"]["content"].as_str().map(str::to_owned),
                _ => None,
            })
            .collect();
        assert_eq!(text, "hello  edge world");
        assert_eq!(events.last(), Some(&StreamEvent::Done));
        assert!(
            matches!(&events[events.len() - 2], StreamEvent::Chunk(c) if c.to_value()["usage"]["completion_tokens"] == 3)
        );
    }
}
