//! Anthropic Messages SSE (`message_start`, `content_block_*`, `message_delta`, `message_stop`)
//! -> OpenAI `chat.completion.chunk`s, event by event.

use std::collections::BTreeMap;

use http::StatusCode;
use serde::Deserialize;
use serde_json::{json, Value};

use super::response::{error_from_parts, finish_reason, AnthropicUsage};
use crate::error::ApiError;
use crate::openai::ChunkHeader;
use crate::providers::framed::FrameTranslator;
use crate::providers::TranslateError;
use crate::providers::{ResponseContext, StreamEvent};
use crate::sse::{SseEvent, SseParser};

/// The event types this translator understands.
const KNOWN_EVENTS: &[&str] = &[
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
];

#[derive(Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Event {
    MessageStart {
        message: StartMessage,
    },
    ContentBlockStart {
        index: u64,
        content_block: Value,
    },
    ContentBlockDelta {
        index: u64,
        delta: Delta,
    },
    ContentBlockStop {},
    MessageDelta {
        delta: MessageDeltaBody,
        #[serde(default)]
        usage: Option<AnthropicUsagePatch>,
    },
    MessageStop {},
    Ping {},
    Error {
        error: ErrorBody,
    },
}

#[derive(Deserialize)]
struct StartMessage {
    id: String,
    model: String,
    #[serde(default)]
    usage: AnthropicUsage,
}

#[derive(Deserialize)]
#[serde(tag = "type")]
enum Delta {
    #[serde(rename = "text_delta")]
    Text { text: String },
    #[serde(rename = "input_json_delta")]
    InputJson { partial_json: String },
    #[serde(rename = "thinking_delta")]
    Thinking { thinking: String },
    #[serde(other)]
    Other,
}

#[derive(Deserialize)]
struct MessageDeltaBody {
    stop_reason: Option<String>,
}

/// `message_delta.usage`: cumulative counts, any of which may be present.
#[derive(Deserialize)]
struct AnthropicUsagePatch {
    output_tokens: Option<u64>,
    input_tokens: Option<u64>,
    cache_read_input_tokens: Option<u64>,
    cache_creation_input_tokens: Option<u64>,
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(rename = "type")]
    kind: String,
    message: String,
}

pub struct AnthropicStream {
    header: ChunkHeader,
    usage: AnthropicUsage,
    /// Anthropic content-block index -> OpenAI tool-call index, for `tool_use` blocks.
    tool_index: BTreeMap<u64, u64>,
    finish: Option<&'static str>,
    ended: bool,
}

impl AnthropicStream {
    pub fn new(ctx: ResponseContext) -> Self {
        let header = ChunkHeader { created: ctx.created, ..ChunkHeader::default() };
        AnthropicStream {
            header,
            usage: AnthropicUsage::default(),
            tool_index: BTreeMap::new(),
            finish: None,
            ended: false,
        }
    }

    fn fail(&mut self, error: impl Into<ApiError>) -> StreamEvent {
        self.ended = true;
        StreamEvent::error(error)
    }
}

impl FrameTranslator for AnthropicStream {
    type Framing = SseParser;
    fn frame(&mut self, sse: SseEvent) -> Vec<StreamEvent> {
        let value: Value = match serde_json::from_str(&sse.data) {
            Ok(v) => v,
            Err(e) => {
                return vec![
                    self.fail(TranslateError::malformed(format!("the upstream sent a malformed stream event: {e}")))
                ]
            }
        };
        // New event types are ignored, as Anthropic's versioning policy asks of clients; a known
        // type that does not parse is a broken stream, not something to skip.
        if !value.get("type").and_then(Value::as_str).is_some_and(|t| KNOWN_EVENTS.contains(&t)) {
            return Vec::new();
        }
        let event: Event = match serde_json::from_value(value) {
            Ok(e) => e,
            Err(e) => {
                return vec![
                    self.fail(TranslateError::malformed(format!("the upstream sent a malformed stream event: {e}")))
                ]
            }
        };
        match event {
            Event::MessageStart { message } => {
                self.header.id = message.id;
                self.header.model = message.model;
                self.usage = message.usage;
                vec![StreamEvent::Chunk(self.header.chunk(json!({"role": "assistant", "content": ""}), None))]
            }
            Event::ContentBlockStart { index, content_block } => {
                match content_block.get("type").and_then(Value::as_str) {
                    Some("tool_use") => {
                        let tool_index = self.tool_index.len() as u64;
                        self.tool_index.insert(index, tool_index);
                        let call = json!({
                            "index": tool_index,
                            "id": content_block.get("id").cloned().unwrap_or(Value::Null),
                            "type": "function",
                            "function": {
                                "name": content_block.get("name").cloned().unwrap_or(Value::Null),
                                "arguments": "",
                            },
                        });
                        vec![StreamEvent::Chunk(self.header.chunk(json!({"tool_calls": [call]}), None))]
                    }
                    Some("text") => match content_block.get("text").and_then(Value::as_str) {
                        Some(text) if !text.is_empty() => {
                            vec![StreamEvent::Chunk(self.header.chunk(json!({"content": text}), None))]
                        }
                        _ => Vec::new(),
                    },
                    _ => Vec::new(),
                }
            }
            Event::ContentBlockDelta { index, delta } => {
                let delta = match delta {
                    Delta::Text { text } => json!({"content": text}),
                    Delta::Thinking { thinking } => json!({"reasoning_content": thinking}),
                    Delta::InputJson { partial_json } => {
                        let Some(tool_index) = self.tool_index.get(&index) else {
                            return vec![self.fail(TranslateError::malformed(
                                "the upstream sent tool arguments for a block that is not a tool call",
                            ))];
                        };
                        json!({"tool_calls": [{"index": tool_index, "function": {"arguments": partial_json}}]})
                    }
                    Delta::Other => return Vec::new(),
                };
                vec![StreamEvent::Chunk(self.header.chunk(delta, None))]
            }
            Event::ContentBlockStop {} | Event::Ping {} => Vec::new(),
            Event::MessageDelta { delta, usage } => {
                if let Some(u) = usage {
                    self.usage.output_tokens = u.output_tokens.unwrap_or(self.usage.output_tokens);
                    self.usage.input_tokens = u.input_tokens.unwrap_or(self.usage.input_tokens);
                    self.usage.cache_read_input_tokens =
                        u.cache_read_input_tokens.or(self.usage.cache_read_input_tokens);
                    self.usage.cache_creation_input_tokens =
                        u.cache_creation_input_tokens.or(self.usage.cache_creation_input_tokens);
                }
                let reason = finish_reason(delta.stop_reason.as_deref().unwrap_or("end_turn"));
                self.finish = Some(reason);
                vec![StreamEvent::Chunk(self.header.chunk(json!({}), Some(reason)))]
            }
            Event::MessageStop {} => {
                self.ended = true;
                if self.finish.is_none() {
                    return vec![StreamEvent::error(interrupted())];
                }
                // Usage always: the pipeline strips it unless the client asked for it.
                vec![StreamEvent::Chunk(self.header.usage_chunk(self.usage.to_openai())), StreamEvent::Done]
            }
            Event::Error { error } => {
                let err = error_from_parts("anthropic", StatusCode::BAD_GATEWAY, &error.kind, &error.message);
                vec![self.fail(err)]
            }
        }
    }
    fn close(&mut self) -> Vec<StreamEvent> {
        if self.ended {
            return Vec::new();
        }
        self.ended = true;
        vec![StreamEvent::error(interrupted())]
    }
    fn ended(&self) -> bool {
        self.ended
    }
}

fn interrupted() -> TranslateError {
    TranslateError::interrupted("the upstream stream ended before the message finished")
}
