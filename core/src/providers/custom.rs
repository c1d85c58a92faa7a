//! Provider type `custom`: a raw upstream. The request body is the configured template with the
//! chat request's values filled in; the answer is read from the upstream's JSON through the
//! configured pointers. The upstream is never asked to stream: a streamed request gets the whole
//! answer as one content chunk, then its finish, usage and `[DONE]`.

use bytes::Bytes;
use http::StatusCode;
use serde_json::{json, Map, Value};

use super::{opaque_upstream_error, ChatProvider, ChatStreamTranslator, StreamEvent};
use super::{ChatCall, ResponseContext, Target};
use crate::config::{CustomMapping, ProviderConfig};
use crate::error::ApiError;
use crate::openai::{ChatRequest, ChunkHeader, MessageContent, Role, Usage};
use crate::providers::TranslateError;

pub struct Custom;

/// Largest upstream body a streamed request buffers before answering.
const MAX_BODY: usize = 16 * 1024 * 1024;

fn mapping(provider: &ProviderConfig) -> Result<&CustomMapping, TranslateError> {
    provider.custom.as_ref().ok_or_else(|| TranslateError::Misconfigured("the custom provider has no mapping".into()))
}

fn refuse(field: &str, why: &str) -> TranslateError {
    TranslateError::invalid(format!("`{field}` {why}")).with_param(field)
}

/// The template variables' values for a request; `None` where the request has no value.
fn variables(target: &Target<'_>, request: &ChatRequest, used: &[&str]) -> Result<Map<String, Value>, TranslateError> {
    let uses = |name: &str| used.contains(&name);
    let text_only = !uses("messages");
    let mut lines = Vec::new();
    let mut system = Vec::new();
    let mut last_user = None;
    for (i, message) in request.messages.iter().enumerate() {
        let text = match &message.content {
            Some(MessageContent::Parts(parts)) if text_only && parts.iter().any(|p| p.kind != "text") => {
                return Err(refuse(&format!("messages[{i}].content"), "must be text: this upstream takes text only"));
            }
            Some(content) => content.text(),
            None => String::new(),
        };
        if text_only && (message.tool_calls.is_some() || message.role == Role::Tool) {
            return Err(refuse(&format!("messages[{i}]"), "is a tool message: this upstream has no tools"));
        }
        let role = serde_json::to_value(message.role).ok().and_then(|v| v.as_str().map(str::to_owned));
        match message.role {
            Role::System | Role::Developer => system.push(text.clone()),
            Role::User => last_user = Some(text.clone()),
            _ => {}
        }
        lines.push(format!("{}: {text}", role.unwrap_or_default()));
    }
    let mut vars = Map::new();
    let mut put = |name: &str, value: Option<Value>| {
        if let Some(value) = value {
            vars.insert(name.to_owned(), value);
        }
    };
    put("model", Some(json!(target.model)));
    put("messages", serde_json::to_value(&request.messages).ok());
    put("prompt", Some(json!(lines.join("\n"))));
    put("last_user_message", last_user.map(Value::String));
    put("system", (!system.is_empty()).then(|| json!(system.join("\n"))));
    put("max_tokens", request.max_output_tokens().map(|n| json!(n)));
    put("temperature", request.temperature.map(|t| json!(t)));
    put("top_p", request.top_p.map(|t| json!(t)));
    put("stop", request.stop.as_ref().map(|s| json!(s.sequences())));
    put("user", request.user.as_ref().map(|u| json!(u)));
    put("seed", request.rest.get("seed").cloned());
    // A value the client set that the template has no place for is refused, never dropped.
    for name in ["max_tokens", "temperature", "top_p", "stop", "user", "seed"] {
        if vars.contains_key(name) && !uses(name) {
            let field = if name == "max_tokens" && request.max_completion_tokens.is_some() {
                "max_completion_tokens"
            } else {
                name
            };
            return Err(refuse(field, "has no place in this upstream's request template"));
        }
    }
    let tools = request.tools.as_ref().is_some_and(|t| !t.is_empty());
    if tools || request.tool_choice.is_some() || request.parallel_tool_calls.is_some() {
        return Err(refuse("tools", "are not supported by a custom upstream"));
    }
    if let Some(field) = request.rest.iter().find(|(k, v)| k.as_str() != "seed" && !v.is_null()).map(|(k, _)| k) {
        return Err(refuse(field, "has no place in this upstream's request template"));
    }
    if let Some(options) = &request.stream_options {
        if let Some(field) = options.rest.keys().next() {
            return Err(refuse(&format!("stream_options.{field}"), "is not supported by a custom upstream"));
        }
    }
    Ok(vars)
}

/// The template with the variables filled in: a string that is exactly `{{name}}` becomes the
/// value (its key is left out when there is none); `{{name}}` inside a longer string, its text.
fn render(template: &Value, vars: &Map<String, Value>) -> Option<Value> {
    match template {
        Value::String(text) => {
            let trimmed = text.trim();
            if let Some(name) = trimmed.strip_prefix("{{").and_then(|t| t.strip_suffix("}}")) {
                if !name.contains("{{") {
                    return vars.get(name.trim()).cloned();
                }
            }
            let mut out = String::new();
            let mut rest = text.as_str();
            while let Some(start) = rest.find("{{") {
                out.push_str(rest.get(..start).unwrap_or_default());
                let after = rest.get(start + 2..).unwrap_or_default();
                let Some(end) = after.find("}}") else {
                    rest = rest.get(start..).unwrap_or_default();
                    break;
                };
                let name = after.get(..end).unwrap_or_default().trim();
                match vars.get(name) {
                    Some(Value::String(s)) => out.push_str(s),
                    Some(other) => out.push_str(&other.to_string()),
                    None => {}
                }
                rest = after.get(end + 2..).unwrap_or_default();
            }
            out.push_str(rest);
            Some(Value::String(out))
        }
        Value::Array(items) => Some(Value::Array(items.iter().filter_map(|v| render(v, vars)).collect())),
        Value::Object(map) => {
            Some(Value::Object(map.iter().filter_map(|(k, v)| Some((k.clone(), render(v, vars)?))).collect()))
        }
        other => Some(other.clone()),
    }
}

fn pointer<'v>(body: &'v Value, path: Option<&String>) -> Option<&'v Value> {
    path.and_then(|p| body.pointer(p))
}

/// The answer's parts, read through the mapping.
struct Answer {
    content: String,
    finish_reason: String,
    usage: Usage,
}

fn answer(ctx: &ResponseContext, body: &[u8]) -> Result<Answer, TranslateError> {
    let r = ctx
        .custom
        .as_ref()
        .ok_or_else(|| TranslateError::Misconfigured("the custom provider has no response mapping".into()))?;
    let body: Value = serde_json::from_slice(body)
        .map_err(|e| TranslateError::malformed(format!("the custom upstream's answer is not JSON: {e}")))?;
    let content = match body.pointer(&r.content) {
        Some(Value::String(text)) => text.clone(),
        Some(Value::Null) | None => {
            return Err(TranslateError::malformed(format!(
                "the custom upstream's answer has nothing at `{}` (`response.content`)",
                r.content
            )))
        }
        Some(other) => other.to_string(),
    };
    let finish = pointer(&body, r.finish_reason.as_ref()).and_then(Value::as_str);
    let finish_reason = finish.and_then(|f| r.finish_reasons.get(f)).map_or("stop", String::as_str).to_owned();
    let count = |path: Option<&String>| pointer(&body, path).and_then(Value::as_u64).unwrap_or(0);
    let usage = Usage {
        prompt_tokens: count(r.prompt_tokens.as_ref()),
        completion_tokens: count(r.completion_tokens.as_ref()),
        ..Usage::default()
    };
    Ok(Answer { content, finish_reason, usage })
}

impl ChatProvider for Custom {
    fn chat_request(
        &self,
        ChatCall { target, request, api_key }: ChatCall<'_>,
    ) -> Result<http::Request<Bytes>, TranslateError> {
        let mapping = mapping(target.provider)?;
        let vars = variables(target, request, &mapping.variables())?;
        let body = render(&mapping.request, &vars).unwrap_or(Value::Null);
        let url = target.provider.base_url.as_deref().unwrap_or_default();
        let auth: Vec<(&str, String)> =
            api_key.map(|key| (mapping.auth_header.as_str(), mapping.auth_value(key))).into_iter().collect();
        let mut upstream = super::json_post(url, target.provider, &auth, &body)?;
        upstream.headers_mut().insert(http::header::ACCEPT, http::HeaderValue::from_static("application/json"));
        Ok(upstream)
    }

    fn chat_response(&self, body: &[u8], ctx: &ResponseContext) -> Result<Value, TranslateError> {
        let answer = answer(ctx, body)?;
        let mut usage = answer.usage.to_json();
        if answer.usage == Usage::default() {
            usage = Value::Null;
        }
        Ok(json!({
            "id": ctx.fallback_id,
            "object": "chat.completion",
            "created": ctx.created,
            "model": ctx.model,
            "choices": [{
                "index": 0,
                "message": {"role": "assistant", "content": answer.content},
                "finish_reason": answer.finish_reason,
                "logprobs": null,
            }],
            "usage": usage,
        }))
    }

    fn chat_stream(&self, ctx: ResponseContext) -> Box<dyn ChatStreamTranslator> {
        Box::new(CustomStream { ctx, body: Vec::new(), too_large: false })
    }

    fn error(&self, provider_name: &str, status: StatusCode, body: &[u8]) -> ApiError {
        opaque_upstream_error(provider_name, status, body)
    }
}

/// A streamed request to an upstream that answers whole: the body is gathered, then answered as
/// one content chunk, the finish chunk, the usage chunk and `[DONE]`.
struct CustomStream {
    ctx: ResponseContext,
    body: Vec<u8>,
    too_large: bool,
}

impl ChatStreamTranslator for CustomStream {
    fn push(&mut self, bytes: &[u8]) -> Vec<StreamEvent> {
        if self.body.len() + bytes.len() > MAX_BODY {
            self.too_large = true;
        } else {
            self.body.extend_from_slice(bytes);
        }
        Vec::new()
    }

    fn finish(self: Box<Self>) -> Vec<StreamEvent> {
        if self.too_large {
            return vec![StreamEvent::error(TranslateError::malformed(format!(
                "the custom upstream's answer exceeds {MAX_BODY} bytes"
            )))];
        }
        let answer = match answer(&self.ctx, &self.body) {
            Ok(answer) => answer,
            Err(error) => return vec![StreamEvent::error(error)],
        };
        let header =
            ChunkHeader { id: self.ctx.fallback_id.clone(), model: self.ctx.model.clone(), created: self.ctx.created };
        vec![
            StreamEvent::Chunk(header.chunk(json!({"role": "assistant", "content": answer.content}), None)),
            StreamEvent::Chunk(header.chunk(json!({}), Some(&answer.finish_reason))),
            StreamEvent::Chunk(header.usage_chunk(answer.usage)),
            StreamEvent::Done,
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderType;
    use crate::providers::test_support::ctx;

    fn provider(request: Value) -> ProviderConfig {
        serde_json::from_value(json!({
            "type": "custom",
            "base_url": "https://llm.internal/v2/generate",
            "api_key_secret": "internal_key",
            "headers": {"x-team": "search"},
            "custom": {
                "auth_header": "x-api-key",
                "request": request,
                "response": {"content": "/output/text", "finish_reason": "/output/stop",
                             "prompt_tokens": "/tokens/in", "completion_tokens": "/tokens/out",
                             "finish_reasons": {"max_length": "length"}}
            }
        }))
        .unwrap()
    }

    fn chat(body: Value) -> ChatRequest {
        serde_json::from_value(body).unwrap()
    }

    fn build(provider: &ProviderConfig, request: Value) -> Result<Value, ApiError> {
        assert_eq!(provider.kind, ProviderType::Custom);
        let target = Target { provider_name: "legacy", provider, model: "legacy-7b".into() };
        let upstream =
            Custom.chat_request(ChatCall { target: &target, request: &chat(request), api_key: Some("sk-internal") })?;
        assert_eq!(upstream.uri(), "https://llm.internal/v2/generate");
        assert_eq!(upstream.headers()["x-api-key"], "sk-internal");
        assert_eq!(upstream.headers()["x-team"], "search");
        Ok(serde_json::from_slice(upstream.body()).unwrap())
    }

    fn mapped_ctx(provider: &ProviderConfig) -> ResponseContext {
        ResponseContext { custom: provider.custom.as_ref().map(|c| c.response.clone()), ..ctx("legacy-7b", "id-1") }
    }

    #[test]
    fn the_template_gets_typed_values_text_and_leaves_out_what_is_missing() {
        let p = provider(json!({
            "engine": "{{model}}",
            "input": {"prompt": "{{prompt}}", "question": "Q: {{last_user_message}}", "system": "{{system}}"},
            "params": {"max_new_tokens": "{{max_tokens}}", "temperature": "{{temperature}}", "fixed": [1, true]}
        }));
        let body = build(
            &p,
            json!({"model": "legacy/legacy-7b", "max_tokens": 64, "messages": [
                {"role": "system", "content": "Be terse."},
                {"role": "user", "content": "hi"}]}),
        )
        .unwrap();
        assert_eq!(
            body,
            json!({
                "engine": "legacy-7b",
                "input": {"prompt": "system: Be terse.\nuser: hi", "question": "Q: hi", "system": "Be terse."},
                "params": {"max_new_tokens": 64, "fixed": [1, true]}
            })
        );
    }

    #[test]
    fn fields_the_template_has_no_place_for_are_refused() {
        let p = provider(json!({"q": "{{last_user_message}}"}));
        let user = json!([{"role": "user", "content": "hi"}]);
        for (field, value) in [("temperature", json!(0.5)), ("seed", json!(1)), ("response_format", json!({}))] {
            let mut request = json!({"model": "m", "messages": user});
            request[field] = value;
            assert_eq!(build(&p, request).unwrap_err().param.as_deref(), Some(field));
        }
        let tools = json!({"model": "m", "messages": user,
                           "tools": [{"type": "function", "function": {"name": "f"}}]});
        assert_eq!(build(&p, tools).unwrap_err().param.as_deref(), Some("tools"));
        let image = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
        assert_eq!(build(&p, image).unwrap_err().param.as_deref(), Some("messages[0].content"));
        // With `{{messages}}` the whole conversation travels as it is, images included.
        let p = provider(json!({"messages": "{{messages}}"}));
        let image = json!({"model": "m", "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://x/y.png"}}]}]});
        assert_eq!(build(&p, image).unwrap()["messages"][0]["content"][0]["type"], "image_url");
    }

    #[test]
    fn the_answer_is_read_through_the_mapping() {
        let p = provider(json!({}));
        let body = br#"{"output": {"text": "Hello", "stop": "max_length"}, "tokens": {"in": 7, "out": 2}}"#;
        let out = Custom.chat_response(body, &mapped_ctx(&p)).unwrap();
        assert_eq!(out["choices"][0]["message"]["content"], "Hello");
        assert_eq!(out["choices"][0]["finish_reason"], "length");
        assert_eq!(out["usage"]["prompt_tokens"], 7);
        assert_eq!(out["usage"]["total_tokens"], 9);
        let missing = ApiError::from(Custom.chat_response(br#"{"output": {}}"#, &mapped_ctx(&p)).unwrap_err());
        assert!(missing.message.contains("/output/text"), "{}", missing.message);
        assert_eq!(ApiError::from(Custom.chat_response(b"<html>", &mapped_ctx(&p)).unwrap_err()).status, 502);
    }

    #[test]
    fn a_streamed_request_gets_the_whole_answer_as_chunks_then_done() {
        let p = provider(json!({}));
        let body = r#"{"output": {"text": "Hello there", "stop": "eos"}, "tokens": {"in": 3, "out": 2}}"#;
        let events = crate::providers::test_support::translate(&Custom, mapped_ctx(&p), body, 5);
        let chunks = crate::providers::test_support::chunks(&events);
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], "Hello there");
        assert_eq!(chunks[1]["choices"][0]["finish_reason"], "stop");
        assert_eq!(chunks[2]["usage"]["completion_tokens"], 2);
        assert_eq!(events.last(), Some(&StreamEvent::Done));
        let broken = crate::providers::test_support::translate(&Custom, mapped_ctx(&p), "{\"output\":", 3);
        assert!(matches!(broken.as_slice(), [StreamEvent::Error(_)]));
    }
}
