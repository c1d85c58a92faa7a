//! The inbound format: OpenAI Chat Completions wire types.
//!
//! Every struct keeps the fields it does not name in `rest`, so a request re-serialized for an
//! OpenAI upstream loses nothing, and a translator can refuse what its provider cannot express.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// `POST /v1/chat/completions` request body.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatRequest {
    pub model: String,
    pub messages: Vec<ChatMessage>,
    pub stream: Option<bool>,
    pub stream_options: Option<StreamOptions>,
    pub max_tokens: Option<u32>,
    pub max_completion_tokens: Option<u32>,
    pub temperature: Option<f64>,
    pub top_p: Option<f64>,
    pub stop: Option<Stop>,
    pub tools: Option<Vec<Tool>>,
    pub tool_choice: Option<ToolChoice>,
    pub parallel_tool_calls: Option<bool>,
    pub user: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ChatRequest {
    pub fn is_stream(&self) -> bool {
        self.stream == Some(true)
    }

    pub fn wants_stream_usage(&self) -> bool {
        self.stream_options.as_ref().and_then(|o| o.include_usage) == Some(true)
    }

    /// `max_completion_tokens` wins over the older `max_tokens`.
    pub fn max_output_tokens(&self) -> Option<u32> {
        self.max_completion_tokens.or(self.max_tokens)
    }
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StreamOptions {
    pub include_usage: Option<bool>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// `stop`: one sequence or several.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    pub fn sequences(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    Developer,
    User,
    Assistant,
    Tool,
    Function,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: Option<MessageContent>,
    pub name: Option<String>,
    pub tool_calls: Option<Vec<ToolCall>>,
    pub tool_call_id: Option<String>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

/// Message content: a string or a list of typed parts.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum MessageContent {
    Text(String),
    Parts(Vec<ContentPart>),
}

impl MessageContent {
    /// The text of all text parts, joined.
    pub fn text(&self) -> String {
        match self {
            MessageContent::Text(s) => s.clone(),
            MessageContent::Parts(parts) => {
                parts.iter().filter_map(|p| p.text.as_deref()).collect::<Vec<_>>().join("\n")
            }
        }
    }
}

/// One content part: `text`, `image_url`, or another type kept whole in `rest`.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ContentPart {
    #[serde(rename = "type")]
    pub kind: String,
    pub text: Option<String>,
    pub image_url: Option<ImageUrl>,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ImageUrl {
    pub url: String,
    pub detail: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Tool {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: FunctionDef,
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionDef {
    pub name: String,
    pub description: Option<String>,
    pub parameters: Option<Value>,
    pub strict: Option<bool>,
}

/// `tool_choice`: `"auto" | "none" | "required"` or a named function.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum ToolChoice {
    Mode(String),
    Named(NamedToolChoice),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedToolChoice {
    #[serde(rename = "type")]
    pub kind: String,
    pub function: NamedFunction,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct NamedFunction {
    pub name: String,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ToolCall {
    pub id: String,
    #[serde(rename = "type", default = "function_kind")]
    pub kind: String,
    pub function: FunctionCall,
}

fn function_kind() -> String {
    "function".into()
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FunctionCall {
    pub name: String,
    /// JSON text, as the model produced it.
    pub arguments: String,
}

/// Token counts in OpenAI's shape.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
    pub cached_tokens: u64,
    pub reasoning_tokens: u64,
}

impl Usage {
    pub fn to_json(self) -> Value {
        serde_json::json!({
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens.saturating_add(self.completion_tokens),
            "prompt_tokens_details": {"cached_tokens": self.cached_tokens},
            "completion_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
        })
    }
}

/// One `chat.completion.chunk` on its way to the client: its choices and usage typed, every other
/// field (`id`, `object`, `created`, `model`, `system_fingerprint`, a vendor's own) kept as it came.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChatChunk {
    #[serde(flatten)]
    pub rest: Map<String, Value>,
    #[serde(default)]
    pub choices: Vec<ChunkChoice>,
    /// The closing chunk's token counts (`stream_options.include_usage`). `None` when the chunk
    /// has no `usage` at all; a `null` (OpenAI sends one on every other chunk) is kept as it came.
    #[serde(default, deserialize_with = "present", skip_serializing_if = "Option::is_none")]
    pub usage: Option<Value>,
}

/// A field that is present, whatever its value (`null` included).
fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Value>, D::Error> {
    Value::deserialize(deserializer).map(Some)
}

/// One choice of a chunk: its index, the delta and why it finished (once it has).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ChunkChoice {
    #[serde(default)]
    pub index: u64,
    #[serde(default)]
    pub delta: Map<String, Value>,
    /// `null` until the choice finishes, as OpenAI sends it.
    #[serde(default)]
    pub finish_reason: Option<String>,
    /// `logprobs` and anything a vendor adds.
    #[serde(flatten)]
    pub rest: Map<String, Value>,
}

impl ChatChunk {
    /// The closing usage chunk: no choices, a `usage` object.
    pub fn is_usage_only(&self) -> bool {
        self.choices.is_empty() && self.usage.as_ref().is_some_and(Value::is_object)
    }

    /// Whether any choice finishes in this chunk.
    pub fn finishes(&self) -> bool {
        self.choices.iter().any(|c| c.finish_reason.is_some())
    }

    /// The chunk as JSON (for readers of the wire shape: tests, traces).
    pub fn to_value(&self) -> Value {
        serde_json::to_value(self).unwrap_or_default()
    }
}

/// The fixed fields of every `chat.completion.chunk` a translator emits.
#[derive(Debug, Clone, Default)]
pub struct ChunkHeader {
    pub id: String,
    pub model: String,
    pub created: u64,
}

impl ChunkHeader {
    fn rest(&self) -> Map<String, Value> {
        let mut rest = Map::with_capacity(4);
        rest.insert("id".into(), Value::from(self.id.as_str()));
        rest.insert("object".into(), Value::from("chat.completion.chunk"));
        rest.insert("created".into(), Value::from(self.created));
        rest.insert("model".into(), Value::from(self.model.as_str()));
        rest
    }

    /// A chunk with one choice at index 0.
    pub fn chunk(&self, delta: Value, finish_reason: Option<&str>) -> ChatChunk {
        self.chunk_at(0, delta, finish_reason)
    }

    /// A chunk with one choice at `index`.
    pub fn chunk_at(&self, index: u64, delta: Value, finish_reason: Option<&str>) -> ChatChunk {
        let delta = match delta {
            Value::Object(delta) => delta,
            _ => Map::new(),
        };
        let mut rest = Map::with_capacity(1);
        rest.insert("logprobs".into(), Value::Null);
        let choice = ChunkChoice { index, delta, finish_reason: finish_reason.map(str::to_owned), rest };
        ChatChunk { rest: self.rest(), choices: vec![choice], usage: None }
    }

    /// The closing usage chunk (`stream_options.include_usage`): no choices.
    pub fn usage_chunk(&self, usage: Usage) -> ChatChunk {
        ChatChunk { rest: self.rest(), choices: Vec::new(), usage: Some(usage.to_json()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_fields_survive_a_round_trip() {
        let body =
            r#"{"model":"m","messages":[{"role":"user","content":"hi","x-extra":1}],"seed":7,"logit_bias":{"1":2}}"#;
        let req: ChatRequest = serde_json::from_str(body).unwrap();
        let back = serde_json::to_value(&req).unwrap();
        assert_eq!(back["seed"], 7);
        assert_eq!(back["logit_bias"]["1"], 2);
        assert_eq!(back["messages"][0]["x-extra"], 1);
    }

    #[test]
    fn max_completion_tokens_wins_over_max_tokens() {
        let req: ChatRequest =
            serde_json::from_str(r#"{"model":"m","messages":[],"max_tokens":5,"max_completion_tokens":9}"#).unwrap();
        assert_eq!(req.max_output_tokens(), Some(9));
    }
}
