//! Gemini `streamGenerateContent?alt=sse` -> OpenAI chunks. Each event is a partial
//! `GenerateContentResponse`: text arrives in pieces, function calls arrive whole, and the last
//! event carries `finishReason` and `usageMetadata`. There is no end marker: a stream that ends
//! before every candidate finished is an error.

use std::collections::BTreeMap;

use serde_json::{json, Value};

use super::response::{finish_reason, translate_parts, GenerateContentResponse, UsageMetadata};
use crate::error::ApiError;
use crate::openai::ChunkHeader;
use crate::providers::framed::FrameTranslator;
use crate::providers::TranslateError;
use crate::providers::{ResponseContext, StreamEvent};
use crate::sse::{SseEvent, SseParser};

/// Per candidate: whether its role was sent, how many tool calls so far, whether it finished.
#[derive(Default)]
struct CandidateState {
    started: bool,
    calls: usize,
    finished: bool,
}

pub struct GeminiStream {
    header: ChunkHeader,
    fallback_id: String,
    candidates: BTreeMap<u64, CandidateState>,
    usage: Option<UsageMetadata>,
    ended: bool,
}

impl GeminiStream {
    pub fn new(ctx: ResponseContext) -> Self {
        GeminiStream {
            header: ChunkHeader { created: ctx.created, ..ChunkHeader::default() },
            fallback_id: ctx.fallback_id,
            candidates: BTreeMap::new(),
            usage: None,
            ended: false,
        }
    }

    fn chunk(&self, index: u64, delta: Value, finish: Option<&str>) -> StreamEvent {
        StreamEvent::Chunk(self.header.chunk_at(index, delta, finish))
    }

    fn fail(&mut self, error: impl Into<ApiError>) -> Vec<StreamEvent> {
        self.ended = true;
        vec![StreamEvent::error(error)]
    }

    fn emit_parts(&self, out: &mut Vec<StreamEvent>, index: u64, first: bool, t: super::response::Translated) {
        if first {
            out.push(self.chunk(index, json!({"role": "assistant", "content": ""}), None));
        }
        if !t.reasoning.is_empty() {
            out.push(self.chunk(index, json!({"reasoning_content": t.reasoning}), None));
        }
        if !t.text.is_empty() {
            out.push(self.chunk(index, json!({"content": t.text}), None));
        }
        if !t.tool_calls.is_empty() {
            out.push(self.chunk(index, json!({"tool_calls": t.tool_calls}), None));
        }
    }
}

impl FrameTranslator for GeminiStream {
    type Framing = SseParser;
    fn frame(&mut self, sse: SseEvent) -> Vec<StreamEvent> {
        let value: Value = match serde_json::from_str(&sse.data) {
            Ok(v) => v,
            Err(e) => {
                return self.fail(TranslateError::malformed(format!("the upstream sent a malformed stream event: {e}")))
            }
        };
        if value.get("error").is_some() {
            return self.fail(super::response::error("gemini", http::StatusCode::BAD_GATEWAY, sse.data.as_bytes()));
        }
        let response: GenerateContentResponse = match serde_json::from_value(value) {
            Ok(r) => r,
            Err(e) => {
                return self.fail(TranslateError::malformed(format!("the upstream sent a malformed stream event: {e}")))
            }
        };
        if self.header.id.is_empty() {
            self.header.id = response.response_id.clone().unwrap_or_else(|| self.fallback_id.clone());
        }
        if let Some(model) = &response.model_version {
            self.header.model.clone_from(model);
        }
        if let Some(usage) = response.usage_metadata {
            self.usage = Some(usage);
        }
        let mut out = Vec::new();
        let blocked = response.prompt_feedback.as_ref().and_then(|f| f.block_reason.as_deref()).is_some();
        if response.candidates.is_empty() && blocked {
            out.push(self.chunk(0, json!({"role": "assistant", "content": ""}), None));
            out.push(self.chunk(0, json!({}), Some("content_filter")));
            self.candidates.entry(0).or_default().finished = true;
        }
        for candidate in &response.candidates {
            let index = candidate.index;
            let state = self.candidates.entry(index).or_default();
            let first = !std::mem::replace(&mut state.started, true);
            let parts = candidate.content.as_ref().map(|c| c.parts.as_slice()).unwrap_or_default();
            let id = self.header.id.clone();
            let translated = translate_parts(parts, &id, index, state.calls);
            state.calls += translated.tool_calls.len();
            let has_calls = state.calls > 0;
            if let Some(reason) = &candidate.finish_reason {
                state.finished = true;
                let reason = finish_reason(reason, has_calls);
                self.emit_parts(&mut out, index, first, translated);
                out.push(self.chunk(index, json!({}), Some(reason)));
            } else {
                self.emit_parts(&mut out, index, first, translated);
            }
        }
        out
    }

    /// The upstream closed: complete when every candidate finished, else an error.
    fn close(&mut self) -> Vec<StreamEvent> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        let complete = !self.candidates.is_empty() && self.candidates.values().all(|c| c.finished);
        if !complete {
            return vec![StreamEvent::Error(
                TranslateError::interrupted("the upstream stream ended before the response finished").into(),
            )];
        }
        let mut out = Vec::new();
        if let Some(usage) = self.usage {
            out.push(StreamEvent::Chunk(self.header.usage_chunk(usage.to_openai())));
        }
        out.push(StreamEvent::Done);
        out
    }
    fn ended(&self) -> bool {
        self.ended
    }
}
