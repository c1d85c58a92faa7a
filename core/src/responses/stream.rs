//! A chat completion stream (the gateway's own SSE) → Responses API stream events, incrementally.

use std::collections::HashMap;

use bytes::Bytes;
use serde_json::{json, Value};

use super::output::{function_call_item, message_item, reasoning_item, refusal_part, text_part, Envelope, Outcome};
use super::set;
use crate::openai::ChatChunk;
use crate::sse::SseParser;

/// One output item while it streams.
enum Item {
    Reasoning { id: String, text: String },
    Message { id: String, parts: Vec<Part> },
    Call { id: String, call_id: String, name: String, arguments: String },
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum PartKind {
    Text,
    Refusal,
}

struct Part {
    kind: PartKind,
    text: String,
}

/// Push chat SSE bytes in, get Responses SSE bytes out. The stream ends with
/// `response.completed` (or `response.incomplete`) after `[DONE]`, and with `error` then
/// `response.failed` when the chat stream failed or ended early.
pub struct ResponsesStream {
    parser: SseParser,
    envelope: Envelope,
    sequence: u64,
    started: bool,
    ended: bool,
    items: Vec<Item>,
    reasoning: Option<usize>,
    message: Option<usize>,
    /// Chat tool-call index → output index.
    calls: HashMap<u64, usize>,
    finish_reason: Option<String>,
    usage: Option<Value>,
}

impl ResponsesStream {
    pub fn new(envelope: Envelope) -> Self {
        ResponsesStream {
            parser: SseParser::new(),
            envelope,
            sequence: 0,
            started: false,
            ended: false,
            items: Vec::new(),
            reasoning: None,
            message: None,
            calls: HashMap::new(),
            finish_reason: None,
            usage: None,
        }
    }

    /// Feeds chat SSE bytes; returns the Responses events they complete, encoded.
    #[must_use]
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        match self.parser.push(bytes) {
            Ok(events) => {
                for event in events {
                    self.event(&event.data, &mut out);
                }
            }
            Err(e) => self.fail("stream_error", &e.to_string(), &mut out),
        }
        out
    }

    /// The chat stream ended; a stream that did not complete ends with a failure.
    #[must_use]
    pub fn finish(mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        for event in std::mem::take(&mut self.parser).finish() {
            self.event(&event.data, &mut out);
        }
        if !self.ended {
            self.fail("stream_interrupted", "the stream ended before the response completed", &mut out);
        }
        out
    }

    fn emit(&mut self, out: &mut Vec<Bytes>, kind: &str, mut event: Value) {
        set(&mut event, "type", json!(kind));
        set(&mut event, "sequence_number", json!(self.sequence));
        self.sequence += 1;
        let mut bytes = format!("event: {kind}\ndata: ").into_bytes();
        bytes.extend_from_slice(&serde_json::to_vec(&event).unwrap_or_default());
        bytes.extend_from_slice(b"\n\n");
        out.push(Bytes::from(bytes));
    }

    fn start(&mut self, out: &mut Vec<Bytes>) {
        if self.started {
            return;
        }
        self.started = true;
        let response = self.envelope.response("in_progress", &Outcome::default());
        self.emit(out, "response.created", json!({"response": response}));
        self.emit(out, "response.in_progress", json!({"response": response}));
    }

    fn event(&mut self, data: &str, out: &mut Vec<Bytes>) {
        if self.ended {
            return;
        }
        if data == "[DONE]" {
            return self.complete(out);
        }
        let chunk: ChatChunk = match serde_json::from_str(data) {
            Ok(chunk) => chunk,
            Err(e) => return self.fail("stream_error", &format!("unreadable stream chunk: {e}"), out),
        };
        if let Some(error) = chunk.rest.get("error") {
            let code = error["code"].as_str().unwrap_or("upstream_error").to_owned();
            let message = error["message"].as_str().unwrap_or("the upstream stream failed").to_owned();
            return self.fail(&code, &message, out);
        }
        self.on_chunk(&chunk, out);
    }

    /// One chat chunk, typed (the gateway's own stream, never encoded as chat SSE on the way);
    /// returns the Responses events it completes, encoded.
    #[must_use]
    pub fn chunk(&mut self, chunk: &ChatChunk) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        if !self.ended {
            self.on_chunk(chunk, &mut out);
        }
        out
    }

    /// The chat stream completed (`[DONE]`): every item closed, then the response.
    #[must_use]
    pub fn done(&mut self) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        if !self.ended {
            self.complete(&mut out);
        }
        out
    }

    /// The chat stream failed: `error`, then `response.failed`.
    #[must_use]
    pub fn error(&mut self, code: &str, message: &str) -> Vec<Bytes> {
        let mut out = Vec::new();
        self.start(&mut out);
        if !self.ended {
            self.fail(code, message, &mut out);
        }
        out
    }

    fn on_chunk(&mut self, chunk: &ChatChunk, out: &mut Vec<Bytes>) {
        if let Some(usage) = chunk.usage.as_ref().filter(|u| u.is_object()) {
            self.usage = Some(usage.clone());
        }
        let Some(choice) = chunk.choices.first() else { return };
        let text = |field: &str| choice.delta.get(field).and_then(Value::as_str).filter(|t| !t.is_empty());
        if let Some(text) = text("reasoning_content") {
            self.reasoning_delta(text, out);
        }
        if let Some(text) = text("content") {
            self.message_delta(PartKind::Text, text, out);
        }
        if let Some(text) = text("refusal") {
            self.message_delta(PartKind::Refusal, text, out);
        }
        for call in choice.delta.get("tool_calls").and_then(Value::as_array).into_iter().flatten() {
            self.call_delta(call, out);
        }
        if let Some(reason) = &choice.finish_reason {
            self.finish_reason = Some(reason.clone());
        }
    }

    fn reasoning_delta(&mut self, text: &str, out: &mut Vec<Bytes>) {
        let index = match self.reasoning {
            Some(index) => index,
            None => {
                let index = self.items.len();
                let id = self.envelope.item_id("rs", index);
                let item = json!({"type": "reasoning", "id": id, "summary": []});
                self.emit(out, "response.output_item.added", json!({"output_index": index, "item": item}));
                let part = json!({"type": "summary_text", "text": ""});
                let added = json!({"item_id": id, "output_index": index, "summary_index": 0, "part": part});
                self.emit(out, "response.reasoning_summary_part.added", added);
                self.items.push(Item::Reasoning { id, text: String::new() });
                self.reasoning = Some(index);
                index
            }
        };
        if let Some(Item::Reasoning { id, text: all }) = self.items.get_mut(index) {
            all.push_str(text);
            let event = json!({"item_id": id, "output_index": index, "summary_index": 0, "delta": text});
            self.emit(out, "response.reasoning_summary_text.delta", event);
        }
    }

    fn message_delta(&mut self, kind: PartKind, text: &str, out: &mut Vec<Bytes>) {
        let index = match self.message {
            Some(index) => index,
            None => {
                let index = self.items.len();
                let id = self.envelope.item_id("msg", index);
                let item = message_item(id.clone(), "in_progress", Vec::new());
                self.emit(out, "response.output_item.added", json!({"output_index": index, "item": item}));
                self.items.push(Item::Message { id, parts: Vec::new() });
                self.message = Some(index);
                index
            }
        };
        let Some(Item::Message { id, parts }) = self.items.get_mut(index) else { return };
        let id = id.clone();
        let content_index = match parts.iter().position(|p| p.kind == kind) {
            Some(position) => position,
            None => {
                parts.push(Part { kind, text: String::new() });
                let part = if kind == PartKind::Text { text_part("") } else { refusal_part("") };
                let position = parts.len() - 1;
                let added = json!({"item_id": id, "output_index": index, "content_index": position, "part": part});
                self.emit(out, "response.content_part.added", added);
                position
            }
        };
        if let Some(Item::Message { parts, .. }) = self.items.get_mut(index) {
            if let Some(part) = parts.get_mut(content_index) {
                part.text.push_str(text);
            }
        }
        let (name, mut event) = match kind {
            PartKind::Text => ("response.output_text.delta", json!({"delta": text, "logprobs": []})),
            PartKind::Refusal => ("response.refusal.delta", json!({"delta": text})),
        };
        set(&mut event, "item_id", json!(id));
        set(&mut event, "output_index", json!(index));
        set(&mut event, "content_index", json!(content_index));
        self.emit(out, name, event);
    }

    fn call_delta(&mut self, call: &Value, out: &mut Vec<Bytes>) {
        let chat_index = call["index"].as_u64().unwrap_or(0);
        let function = &call["function"];
        let index = match self.calls.get(&chat_index) {
            Some(index) => *index,
            None => {
                let index = self.items.len();
                let id = self.envelope.item_id("fc", index);
                let call_id = call["id"].as_str().unwrap_or_default().to_owned();
                let name = function["name"].as_str().unwrap_or_default().to_owned();
                let item = function_call_item(id.clone(), "in_progress", &call_id, &name, "");
                self.emit(out, "response.output_item.added", json!({"output_index": index, "item": item}));
                self.items.push(Item::Call { id, call_id, name, arguments: String::new() });
                self.calls.insert(chat_index, index);
                index
            }
        };
        let Some(delta) = function["arguments"].as_str().filter(|a| !a.is_empty()) else { return };
        if let Some(Item::Call { id, arguments, .. }) = self.items.get_mut(index) {
            arguments.push_str(delta);
            let event = json!({"item_id": id, "output_index": index, "delta": delta});
            self.emit(out, "response.function_call_arguments.delta", event);
        }
    }

    /// `[DONE]`: closes every item in order, then the response.
    fn complete(&mut self, out: &mut Vec<Bytes>) {
        self.ended = true;
        let items = std::mem::take(&mut self.items);
        let mut finished = Vec::with_capacity(items.len());
        for (index, item) in items.into_iter().enumerate() {
            let done = self.close(index, item, out);
            self.emit(out, "response.output_item.done", json!({"output_index": index, "item": done}));
            finished.push(done);
        }
        let outcome = Outcome { items: finished, finish_reason: self.finish_reason.take(), usage: self.usage.take() };
        let response = self.envelope.response("completed", &outcome);
        let kind = if response.get("status").is_some_and(|s| s == "incomplete") {
            "response.incomplete"
        } else {
            "response.completed"
        };
        self.emit(out, kind, json!({"response": response}));
    }

    /// The `.done` events of one item; returns the finished item.
    fn close(&mut self, index: usize, item: Item, out: &mut Vec<Bytes>) -> Value {
        match item {
            Item::Reasoning { id, text } => {
                let at = json!({"item_id": id, "output_index": index, "summary_index": 0});
                let mut done = at.clone();
                set(&mut done, "text", json!(text));
                self.emit(out, "response.reasoning_summary_text.done", done);
                let mut part = at;
                set(&mut part, "part", json!({"type": "summary_text", "text": text}));
                self.emit(out, "response.reasoning_summary_part.done", part);
                reasoning_item(id, &text)
            }
            Item::Message { id, parts } => {
                let mut finished = Vec::with_capacity(parts.len());
                for (content_index, part) in parts.into_iter().enumerate() {
                    let at = json!({"item_id": id, "output_index": index, "content_index": content_index});
                    let (name, field, whole) = match part.kind {
                        PartKind::Text => ("response.output_text.done", "text", text_part(&part.text)),
                        PartKind::Refusal => ("response.refusal.done", "refusal", refusal_part(&part.text)),
                    };
                    let mut done = at.clone();
                    set(&mut done, field, json!(part.text));
                    if part.kind == PartKind::Text {
                        set(&mut done, "logprobs", json!([]));
                    }
                    self.emit(out, name, done);
                    let mut part_done = at;
                    set(&mut part_done, "part", whole.clone());
                    self.emit(out, "response.content_part.done", part_done);
                    finished.push(whole);
                }
                message_item(id, "completed", finished)
            }
            Item::Call { id, call_id, name, arguments } => {
                let done = json!({"item_id": id, "output_index": index, "name": name, "arguments": arguments});
                self.emit(out, "response.function_call_arguments.done", done);
                function_call_item(id, "completed", &call_id, &name, &arguments)
            }
        }
    }

    /// An `error` event, then `response.failed`; nothing follows.
    fn fail(&mut self, code: &str, message: &str, out: &mut Vec<Bytes>) {
        self.ended = true;
        self.emit(out, "error", json!({"code": code, "message": message, "param": null}));
        let outcome = Outcome { items: Vec::new(), finish_reason: None, usage: self.usage.take() };
        let mut response = self.envelope.response("failed", &outcome);
        set(&mut response, "error", json!({"code": code, "message": message}));
        self.emit(out, "response.failed", json!({"response": response}));
    }
}
