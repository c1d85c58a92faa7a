//! Ollama's NDJSON chat stream -> OpenAI chunks: each line carries a piece of the message (tool
//! calls arrive whole); the last has `done: true`, the reason and the token counts.

use serde_json::json;

use super::response::{finish_reason, tool_calls, ChatResponse};
use crate::error::ApiError;
use crate::ndjson::NdjsonParser;
use crate::openai::ChunkHeader;
use crate::providers::framed::FrameTranslator;
use crate::providers::TranslateError;
use crate::providers::{ResponseContext, StreamEvent};

pub struct OllamaStream {
    header: ChunkHeader,
    started: bool,
    calls: usize,
    ended: bool,
}

impl OllamaStream {
    pub fn new(ctx: ResponseContext) -> Self {
        let header = ChunkHeader { id: ctx.fallback_id, model: String::new(), created: ctx.created };
        OllamaStream { header, started: false, calls: 0, ended: false }
    }

    fn fail(&mut self, error: impl Into<ApiError>) -> Vec<StreamEvent> {
        self.ended = true;
        vec![StreamEvent::error(error)]
    }
}

impl FrameTranslator for OllamaStream {
    type Framing = NdjsonParser;
    fn frame(&mut self, line: String) -> Vec<StreamEvent> {
        let response: ChatResponse = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(TranslateError::malformed(format!("the upstream sent a malformed stream line: {e}")))
            }
        };
        if let Some(message) = response.error.as_deref() {
            return self.fail(TranslateError::malformed(format!("the upstream stream failed: {message}")));
        }
        if self.header.model.is_empty() {
            self.header.model.clone_from(&response.model);
        }
        let mut out = Vec::new();
        if !std::mem::replace(&mut self.started, true) {
            out.push(StreamEvent::Chunk(self.header.chunk(json!({"role": "assistant", "content": ""}), None)));
        }
        if let Some(message) = &response.message {
            if let Some(thinking) = message.thinking.as_deref().filter(|t| !t.is_empty()) {
                out.push(StreamEvent::Chunk(self.header.chunk(json!({"reasoning_content": thinking}), None)));
            }
            if !message.content.is_empty() {
                out.push(StreamEvent::Chunk(self.header.chunk(json!({"content": message.content}), None)));
            }
            if !message.tool_calls.is_empty() {
                let calls = tool_calls(&message.tool_calls, &self.header.id, self.calls);
                self.calls += calls.len();
                out.push(StreamEvent::Chunk(self.header.chunk(json!({"tool_calls": calls}), None)));
            }
        }
        if response.done {
            self.ended = true;
            let reason = finish_reason(response.done_reason.as_deref(), self.calls > 0);
            out.push(StreamEvent::Chunk(self.header.chunk(json!({}), Some(reason))));
            out.push(StreamEvent::Chunk(self.header.usage_chunk(response.usage())));
            out.push(StreamEvent::Done);
        }
        out
    }
    fn close(&mut self) -> Vec<StreamEvent> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec![StreamEvent::Error(TranslateError::interrupted("the upstream stream ended before `done`").into())]
    }
    fn ended(&self) -> bool {
        self.ended
    }
}
