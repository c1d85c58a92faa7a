//! OpenAI endpoints other than chat (`/v1/embeddings`, `/v1/images/generations`,
//! `/v1/moderations`, `/v1/audio/speech`, `/v1/responses`): the body is forwarded as it is, with
//! the provider's model id and credentials, to providers that offer the endpoint; a provider that
//! does not is a 400 naming it and the endpoint, before anything is sent. `/v1/responses` for a
//! route with a target lacking a native Responses API is translated through chat instead.

use serde_json::{Map, Value};

use super::attempts::{operation_target, target_span, Delivery, Upstream};
use super::body::{read_body, RequestError};
use super::chat_guard::check_body;
use super::context::RequestContext;
use super::guard::Guard;
use super::limits;
use super::phases::{self, Prepared, TargetPlan};
use super::recorder::Recorder;
use super::resolve::apply_body_transform;
use super::responses;
use crate::error::ApiError;
use crate::host::{Body, Host};
use crate::providers::{self, Operation, Target};
use crate::trace::SpanRef;

pub(crate) async fn forward<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    body: Body,
    (route, op): (Option<&str>, Operation),
) -> Result<http::Response<Body>, ApiError> {
    let bytes = read_body(&**cx.host, cx.config, cx.parts, body).await?;
    let mut body = parse(&bytes)?;
    let model = match body.get("model") {
        Some(Value::String(model)) => model.clone(),
        Some(_) => return Err(RequestError::NotAString("model").into()),
        None if route.is_some() => String::new(),
        None => return Err(RequestError::Required("model").into()),
    };
    let resolved = phases::resolve(cx, route, &model)?;
    let estimate = match op {
        // A Responses request generates: its output is reserved, a default when it sets none.
        Operation::Responses => {
            let max_output = body.get("max_output_tokens").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
            limits::estimate(bytes.len(), max_output, &["max_output_tokens"], &resolved)
        }
        _ => limits::TokenEstimate::input_only(bytes.len()),
    };
    let admitted = phases::rate_limit(cx, Some(&resolved), Some(estimate)).await?;
    let guard = phases::input(cx, &resolved).await?;
    let lacking = resolved.targets.iter().find(|t| !providers::offers(t.provider.kind, op));
    // Output guardrails read the answer as chat completions, so a native Responses target is
    // translated too while they are in scope.
    let through_chat = lacking.is_some() || guard.as_ref().is_some_and(|g| g.wants_output());
    let mut response = if op == Operation::Responses && through_chat {
        responses::translated(cx, &body, (&resolved, lacking), guard).await?
    } else {
        if let Some(transform) = resolved.transform() {
            apply_body_transform(&mut body, transform);
        }
        let base64_embeddings = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
        let mut plan = OperationPlan { cx, body, op, base64_embeddings };
        phases::upstream(cx, &resolved, guard.as_ref(), &mut plan).await?
    };
    admitted.mark(&mut response);
    Ok(response)
}

/// The request body as a JSON object.
fn parse(bytes: &[u8]) -> Result<Map<String, Value>, RequestError> {
    match serde_json::from_slice(bytes) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(RequestError::NotAnObject),
        Err(e) => Err(RequestError::NotJson(e.to_string())),
    }
}

/// How another endpoint's request is tried on one target.
struct OperationPlan<'a, H: Host + 'static> {
    cx: &'a RequestContext<'a, H>,
    body: Map<String, Value>,
    op: Operation,
    base64_embeddings: bool,
}

impl<H: Host + 'static> TargetPlan<H> for OperationPlan<'_, H> {
    fn span(&self, recorder: &Recorder<H>, target: &Target<'_>, fallback: bool) -> SpanRef {
        target_span(recorder, target, self.op.otel_name(), fallback)
    }

    async fn check(&mut self, guard: &Guard<H>, target: &Target<'_>) -> Result<(), ApiError> {
        check_body(guard, &mut self.body, target).await
    }

    async fn prepare(&mut self, target: &Target<'_>, _span: SpanRef) -> Prepared {
        let (recorder, body, op) = (self.cx.recorder, &self.body, self.op);
        recorder.snapshot_with(recorder.root(), crate::trace::attrs::GATEWAY_REQUEST_BODY, || {
            serde_json::to_string(body).unwrap_or_default()
        });
        // A target that cannot be used (no secret, no such endpoint) hands over to the next.
        let prepared = operation_target(&**self.cx.host, target, op, |provider, key| {
            provider.operation_request(op, target, body.clone(), key).map(|r| r.map_err(ApiError::from))
        });
        match prepared {
            Ok((provider, upstream)) => Prepared::Send(provider, Upstream::Replayable(upstream)),
            Err(error) => Prepared::Skip(error),
        }
    }

    fn delivery(&self) -> Delivery<'_> {
        Delivery::Operation { op: self.op, base64_embeddings: self.base64_embeddings }
    }
}
