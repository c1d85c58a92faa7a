//! The input phase of LLM requests: the prompt (`process_prompt`) and the tool results sent back
//! to the model (`process_tool_response`), inspected before anything is forwarded.

use std::collections::HashMap;

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

/// Checks `slots` at `point` and writes redactions back.
async fn check_slots<H: Host + 'static>(
    guard: &Guard<H>,
    point: Point<'_>,
    slots: Vec<&mut String>,
) -> Result<(), ApiError> {
    // Decided even with no text at all: policies on the principal, model or route still apply.
    let copies: Vec<String> = slots.iter().map(|s| s.to_string()).collect();
    let texts: Vec<&str> = copies.iter().map(String::as_str).collect();
    let checked = guard.check(point, &texts).await?;
    for (slot, redacted) in slots.into_iter().zip(checked.redacted) {
        if let Some(redacted) = redacted {
            *slot = redacted;
        }
    }
    Ok(())
}

/// The input phase of a chat request bound for `target`: every message but tool results as the
/// prompt (earlier assistant turns included: a client may write them), tool results on their own.
pub(crate) async fn check_chat<H: Host + 'static>(
    guard: &Guard<H>,
    request: &mut ChatRequest,
    target: &Target<'_>,
) -> Result<(), ApiError> {
    let model = format!("{}/{}", target.provider_name, target.model);
    let route = guard.route();
    let facts = Facts {
        model: &model,
        provider: target.provider_name,
        route: route.unwrap_or_default(),
        streaming: request.is_stream(),
        phase: "input",
        ..Facts::default()
    };
    if guard.wants(Action::ProcessPrompt) {
        let slots: Vec<&mut String> = request
            .messages
            .iter_mut()
            .filter(|m| !matches!(m.role, Role::Tool | Role::Function))
            .flat_map(texts_mut)
            .collect();
        let resource = Resource::Model { name: &model, provider: target.provider_name, route };
        check_slots(guard, Point { action: Action::ProcessPrompt, resource, facts }, slots).await?;
    }
    if guard.wants(Action::ProcessToolResponse) {
        let names: HashMap<String, String> = request
            .messages
            .iter()
            .flat_map(|m| m.tool_calls.iter().flatten())
            .map(|call| (call.id.clone(), call.function.name.clone()))
            .collect();
        for message in request.messages.iter_mut().filter(|m| matches!(m.role, Role::Tool | Role::Function)) {
            let name = message
                .tool_call_id
                .as_ref()
                .and_then(|id| names.get(id))
                .cloned()
                .or_else(|| message.name.clone())
                .unwrap_or_default();
            let resource = Resource::Tool { name: &name, server: None };
            let point = Point { action: Action::ProcessToolResponse, resource, facts: Facts { tool: &name, ..facts } };
            check_slots(guard, point, texts_mut(message)).await?;
        }
    }
    Ok(())
}

/// The prompt texts of another endpoint's JSON body: `input`, `prompt` and `instructions`, as
/// strings, lists of strings, or (Responses API) items with text content.
fn body_texts_mut(body: &mut serde_json::Map<String, Value>) -> Vec<&mut String> {
    fn walk<'v>(value: &'v mut Value, out: &mut Vec<&'v mut String>) {
        match value {
            Value::String(text) => out.push(text),
            Value::Array(items) => items.iter_mut().for_each(|item| walk(item, out)),
            Value::Object(map) => {
                for (key, inner) in map.iter_mut() {
                    if matches!(key.as_str(), "text" | "content" | "input" | "output") {
                        walk(inner, out);
                    }
                }
            }
            _ => {}
        }
    }
    let mut out = Vec::new();
    for (key, value) in body.iter_mut() {
        if matches!(key.as_str(), "input" | "prompt" | "instructions") {
            walk(value, &mut out);
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
    let model = format!("{}/{}", target.provider_name, target.model);
    let route = guard.route();
    let facts = Facts {
        model: &model,
        provider: target.provider_name,
        route: route.unwrap_or_default(),
        phase: "input",
        ..Facts::default()
    };
    let resource = Resource::Model { name: &model, provider: target.provider_name, route };
    check_slots(guard, Point { action: Action::ProcessPrompt, resource, facts }, body_texts_mut(body)).await
}

/// The input phase of an audio upload: nothing to read, but the principal, model and route are
/// still decided.
pub(crate) async fn check_upload<H: Host + 'static>(guard: &Guard<H>, target: &Target<'_>) -> Result<(), ApiError> {
    if !guard.wants(Action::ProcessPrompt) {
        return Ok(());
    }
    let model = format!("{}/{}", target.provider_name, target.model);
    let route = guard.route();
    let facts = Facts {
        model: &model,
        provider: target.provider_name,
        route: route.unwrap_or_default(),
        phase: "input",
        ..Facts::default()
    };
    let resource = Resource::Model { name: &model, provider: target.provider_name, route };
    guard.check(Point { action: Action::ProcessPrompt, resource, facts }, &[]).await.map(|_| ())
}
