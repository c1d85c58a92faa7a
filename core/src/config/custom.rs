//! Provider type `custom`: a raw upstream with its own URL, headers, request template and
//! response mapping, for proprietary or non-standard APIs. Usable in `providers` and as a route
//! of kind `custom`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::validate::ConfigError;

/// Variables a request template may use, each as `"{{name}}"` (the JSON value, the key left out
/// when the request has none) or inside a longer string (as text).
pub const TEMPLATE_VARIABLES: &[&str] = &[
    // The model id after `provider/` (a custom route's name for a route of kind `custom`).
    "model",
    // The OpenAI `messages` array as the client sent it.
    "messages",
    // The conversation as text: one `role: content` line per message.
    "prompt",
    "last_user_message",
    // The system and developer messages' text, joined.
    "system",
    // `max_completion_tokens`, else `max_tokens`.
    "max_tokens",
    "temperature",
    "top_p",
    "stop",
    "seed",
    "user",
];

/// How the gateway talks to a raw upstream.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CustomMapping {
    /// Header that carries the key from `api_key_secret`.
    #[serde(default = "authorization")]
    pub auth_header: String,
    /// Text before the key in that header; default `Bearer ` for `authorization`, else none.
    pub auth_prefix: Option<String>,
    /// The upstream request body: any JSON, with `{{variable}}` placeholders (see the README).
    pub request: Value,
    pub response: ResponseMapping,
}

fn authorization() -> String {
    "authorization".into()
}

/// Where the answer is in the upstream's JSON response (JSON pointers, e.g. `/output/0/text`).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ResponseMapping {
    /// The answer text.
    pub content: String,
    pub finish_reason: Option<String>,
    pub prompt_tokens: Option<String>,
    pub completion_tokens: Option<String>,
    /// Upstream finish values → OpenAI's (`stop`, `length`, `content_filter`); others are `stop`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub finish_reasons: BTreeMap<String, String>,
}

impl CustomMapping {
    /// The auth header's value for a key.
    pub fn auth_value(&self, key: &str) -> String {
        let default_prefix = if self.auth_header.eq_ignore_ascii_case("authorization") { "Bearer " } else { "" };
        format!("{}{key}", self.auth_prefix.as_deref().unwrap_or(default_prefix))
    }

    /// Every `{{name}}` the request template uses.
    pub fn variables(&self) -> Vec<&str> {
        let mut found = Vec::new();
        collect_variables(&self.request, &mut found);
        found
    }

    pub(super) fn check(&self, at: &str) -> Result<(), ConfigError> {
        if http::HeaderName::from_bytes(self.auth_header.as_bytes()).is_err() {
            return Err(ConfigError::new(format!("{at}.auth_header"), "not a valid header name"));
        }
        for name in self.variables() {
            if !TEMPLATE_VARIABLES.contains(&name) {
                return Err(ConfigError::new(
                    format!("{at}.request"),
                    format!("unknown variable `{{{{{name}}}}}`; known: {}", TEMPLATE_VARIABLES.join(", ")),
                ));
            }
        }
        let r = &self.response;
        let pointers = [
            ("content", Some(&r.content)),
            ("finish_reason", r.finish_reason.as_ref()),
            ("prompt_tokens", r.prompt_tokens.as_ref()),
            ("completion_tokens", r.completion_tokens.as_ref()),
        ];
        for (field, pointer) in pointers {
            if pointer.is_some_and(|p| !p.is_empty() && !p.starts_with('/')) {
                return Err(ConfigError::new(
                    format!("{at}.response.{field}"),
                    "a JSON pointer starts with `/` (e.g. `/choices/0/text`)",
                ));
            }
        }
        for (upstream, ours) in &r.finish_reasons {
            if !matches!(ours.as_str(), "stop" | "length" | "content_filter") {
                return Err(ConfigError::new(
                    format!("{at}.response.finish_reasons.{upstream}"),
                    "must be `stop`, `length` or `content_filter`",
                ));
            }
        }
        Ok(())
    }
}

fn collect_variables<'v>(value: &'v Value, found: &mut Vec<&'v str>) {
    match value {
        Value::String(text) => {
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                let after = rest.get(start + 2..).unwrap_or_default();
                let Some(end) = after.find("}}") else { break };
                found.push(after.get(..end).unwrap_or_default().trim());
                rest = after.get(end + 2..).unwrap_or_default();
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_variables(v, found)),
        Value::Object(map) => map.values().for_each(|v| collect_variables(v, found)),
        _ => {}
    }
}
