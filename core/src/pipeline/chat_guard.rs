//! The input phase of LLM requests: the prompt (`process_prompt`) and the tool results sent back
//! to the model (`process_tool_response`), inspected before anything is forwarded.

use std::collections::BTreeMap;

use serde_json::Value;

use super::guard::{Guard, Point};
use crate::error::ApiError;
use crate::host::Host;
use crate::openai::{ChatMessage, ChatRequest, MessageContent, Role};
use crate::policy::{Action, Facts, Resource};
use crate::providers::Target;

/// The text slots of one message's content.
fn texts_mut(message: &mut ChatMessage) -> Vec<&mut String> {
    match message.content.as_mut() {
        Some(MessageContent::Text(text)) => vec![text],
        Some(MessageContent::Parts(parts)) => parts.iter_mut().filter_map(|p| p.text.as_mut()).collect(),
        None => Vec::new(),
    }
}

/// Payload fields of file and audio parts: data, not text a detector could read.
const PAYLOAD_KEYS: &[&str] = &["data", "file_data", "file_id", "url"];

/// Every string in `value`, but under payload keys.
fn strings_mut<'v>(value: &'v mut Value, out: &mut Vec<&'v mut String>) {
    strings_under(value, out, &|key| !PAYLOAD_KEYS.contains(&key));
}

/// Every string in `value` reached through object keys that `follow` accepts.
fn strings_under<'v>(value: &'v mut Value, out: &mut Vec<&'v mut String>, follow: &dyn Fn(&str) -> bool) {
    match value {
        Value::String(text) => out.push(text),
        Value::Array(items) => items.iter_mut().for_each(|item| strings_under(item, out, follow)),
        Value::Object(map) => {
            for (key, inner) in map.iter_mut() {
                if follow(key) {
                    strings_under(inner, out, follow);
                }
            }
        }
        _ => {}
    }
}

/// Every text of a prompt message: its content, the metadata of its file and audio parts (a file
/// name, say), the arguments of tool calls a client wrote into an earlier assistant turn, and the
/// legacy `function_call`'s.
fn prompt_texts_mut(message: &mut ChatMessage) -> Vec<&mut String> {
    let ChatMessage { content, tool_calls, rest, .. } = message;
    let mut out = Vec::new();
    match content.as_mut() {
        Some(MessageContent::Text(text)) => out.push(text),
        Some(MessageContent::Parts(parts)) => {
            for part in parts.iter_mut() {
                let crate::openai::ContentPart { text, rest, .. } = part;
                out.extend(text.as_mut());
                for (key, value) in rest.iter_mut() {
                    if matches!(key.as_str(), "file" | "input_audio") {
                        strings_mut(value, &mut out);
                    }
                }
            }
        }
        None => {}
    }
    for call in tool_calls.iter_mut().flatten() {
        out.push(&mut call.function.arguments);
    }
    if let Some(Value::String(arguments)) = rest.get_mut("function_call").and_then(|c| c.get_mut("arguments")) {
        out.push(arguments);
    }
    out
}

/// Text the request itself carries to the model besides its messages: tool and (legacy)
/// function descriptions, and a `prediction` of the output.
fn request_texts_mut<'r>(
    tools: &'r mut Option<Vec<crate::openai::Tool>>,
    rest: &'r mut serde_json::Map<String, Value>,
) -> Vec<&'r mut String> {
    let mut out: Vec<&mut String> =
        tools.iter_mut().flatten().filter_map(|t| t.function.description.as_mut()).collect();
    for (key, value) in rest.iter_mut() {
        match key.as_str() {
            "functions" => {
                for function in value.as_array_mut().into_iter().flatten() {
                    if let Some(Value::String(description)) = function.get_mut("description") {
                        out.push(description);
                    }
                }
            }
            "prediction" => {
                if let Some(content) = value.get_mut("content") {
                    strings_mut(content, &mut out);
                }
            }
            _ => {}
        }
    }
    out
}

/// What a point about one target is decided on: the model, its provider, the route.
struct TargetScope<'a> {
    model: String,
    provider: &'a str,
    route: Option<&'a str>,
}

impl<'a> TargetScope<'a> {
    fn of<H: Host + 'static>(guard: &'a Guard<H>, target: &'a Target<'_>) -> Self {
        TargetScope {
            model: format!("{}/{}", target.provider_name, target.model),
            provider: target.provider_name,
            route: guard.route(),
        }
    }

    fn facts(&self, streaming: bool) -> Facts<'_> {
        Facts {
            model: &self.model,
            provider: self.provider,
            route: self.route.unwrap_or_default(),
            streaming,
            phase: "input",
            ..Facts::default()
        }
    }

    /// The prompt point, about the model.
    fn prompt(&self, streaming: bool) -> Point<'_> {
        let resource = Resource::Model { name: &self.model, provider: self.provider, route: self.route };
        Point { action: Action::ProcessPrompt, resource, facts: self.facts(streaming) }
    }
}

/// The input phase of a chat request bound for `target`: every message but tool results as the
/// prompt (earlier assistant turns included: a client may write them), tool results on their own.
pub(crate) async fn check_chat<H: Host + 'static>(
    guard: &Guard<H>,
    request: &mut ChatRequest,
    target: &Target<'_>,
) -> Result<(), ApiError> {
    let scope = TargetScope::of(guard, target);
    let streaming = request.is_stream();
    if guard.wants(Action::ProcessPrompt) {
        let mut slots: Vec<&mut String> = request
            .messages
            .iter_mut()
            .filter(|m| !matches!(m.role, Role::Tool | Role::Function))
            .flat_map(prompt_texts_mut)
            .collect();
        slots.extend(request_texts_mut(&mut request.tools, &mut request.rest));
        guard.check_slots(scope.prompt(streaming), slots).await?;
    }
    if guard.wants(Action::ProcessToolResponse) {
        // Keyed by client input: an ordered map, whose cost no choice of keys can inflate.
        let names: BTreeMap<String, String> = request
            .messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .map(|call| (call.id.clone(), call.function.name.clone()))
            .collect();
        // The remote guard service is asked once about every tool result of the request (never
        // once per message: a request may carry thousands); the policies decide per result.
        let results: Vec<String> = request
            .messages
            .iter_mut()
            .filter(|m| matches!(m.role, Role::Tool | Role::Function))
            .flat_map(|m| texts_mut(m).into_iter().map(|t| t.clone()))
            .collect();
        let texts: Vec<&str> = results.iter().map(String::as_str).collect();
        let all = Point {
            action: Action::ProcessToolResponse,
            resource: Resource::Tool { name: "", server: None },
            facts: scope.facts(streaming),
        };
        let answer = guard.remote_answer(&all, &texts).await?;
        for message in request.messages.iter_mut().filter(|m| matches!(m.role, Role::Tool | Role::Function)) {
            let name = message
                .tool_call_id
                .as_ref()
                .and_then(|id| names.get(id))
                .cloned()
                .or_else(|| message.name.clone())
                .unwrap_or_default();
            let resource = Resource::Tool { name: &name, server: None };
            let facts = Facts { tool: &name, ..scope.facts(streaming) };
            let point = Point { action: Action::ProcessToolResponse, resource, facts };
            guard.check_slots_with(point, texts_mut(message), answer.as_ref())?;
        }
    }
    Ok(())
}

/// The prompt texts of another endpoint's JSON body: `input`, `prompt` and `instructions`, as
/// strings, lists of strings, or (Responses API) items with text content.
fn body_texts_mut(body: &mut serde_json::Map<String, Value>) -> Vec<&mut String> {
    let text = |key: &str| matches!(key, "text" | "content" | "input" | "output");
    let mut out = Vec::new();
    for (key, value) in body.iter_mut() {
        if matches!(key.as_str(), "input" | "prompt" | "instructions") {
            strings_under(value, &mut out, &text);
        }
    }
    out
}

/// The input phase of another endpoint's JSON request (embeddings, images, moderations, speech,
/// native Responses): its prompt texts, checked and redacted in place.
pub(crate) async fn check_body<H: Host + 'static>(
    guard: &Guard<H>,
    body: &mut serde_json::Map<String, Value>,
    target: &Target<'_>,
) -> Result<(), ApiError> {
    if !guard.wants(Action::ProcessPrompt) {
        return Ok(());
    }
    let scope = TargetScope::of(guard, target);
    guard.check_slots(scope.prompt(false), body_texts_mut(body)).await
}

/// The input phase of an audio upload: nothing to read, but the principal, model and route are
/// still decided.
pub(crate) async fn check_upload<H: Host + 'static>(guard: &Guard<H>, target: &Target<'_>) -> Result<(), ApiError> {
    if !guard.wants(Action::ProcessPrompt) {
        return Ok(());
    }
    guard.check_slots(TargetScope::of(guard, target).prompt(false), Vec::new()).await
}
