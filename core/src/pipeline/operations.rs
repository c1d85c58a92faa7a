//! OpenAI endpoints other than chat (`/v1/embeddings`, `/v1/images/generations`,
//! `/v1/moderations`, `/v1/audio/speech`, `/v1/responses`): the body is forwarded as it is, with
//! the provider's model id and credentials, to providers that offer the endpoint; a provider that
//! does not is a 400 naming it and the endpoint, before anything is sent. `/v1/responses` for a
//! route with a target lacking a native Responses API is translated through chat instead.

use std::cell::Cell;
use std::rc::Rc;

use serde_json::{Map, Value};

use super::attempts::{operation_target, skip_target, target_span, AfterTarget, Attempts, Delivery, Upstream};
use super::body::read_body;
use super::chat_guard::check_body;
use super::guard::route_guard;
use super::guard::Guard;
use super::limits;
use super::recorder::Recorder;
use super::resolve::{apply_body_transform, resolve_recorded, Resolved};
use super::responses;
use crate::config::Config;
use crate::config::PrincipalConfig;
use crate::error::ApiError;
use crate::host::{Body, Host};
use crate::providers::{self, Operation};

pub(crate) async fn forward<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    parts: &http::request::Parts,
    body: Body,
    (route, op): (Option<&str>, Operation),
    principal: &PrincipalConfig,
    recorder: &Recorder<H>,
) -> Result<http::Response<Body>, ApiError> {
    let bytes = read_body(&**host, config, parts, body).await?;
    let mut body: Map<String, Value> = match serde_json::from_slice(&bytes) {
        Ok(Value::Object(map)) => map,
        Ok(_) => return Err(ApiError::invalid_request("the request body must be a JSON object")),
        Err(e) => return Err(ApiError::invalid_request(format!("request body is not valid JSON: {e}"))),
    };
    let model = match body.get("model") {
        Some(Value::String(model)) => model.clone(),
        Some(_) => return Err(ApiError::invalid_request("`model` must be a string").with_param("model")),
        None if route.is_some() => String::new(),
        None => return Err(ApiError::invalid_request("`model` is required").with_param("model")),
    };
    let resolved = resolve_recorded(&**host, config, (route, &model), principal, recorder)?;
    let max_output = body.get("max_output_tokens").and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok());
    let admitted = limits::admit(
        host,
        config,
        resolved.route,
        principal,
        Some(match op {
            // A Responses request generates: its output is reserved, a default when it sets none.
            Operation::Responses => limits::estimate(bytes.len(), max_output, &["max_output_tokens"], &resolved),
            _ => limits::TokenEstimate::input_only(bytes.len()),
        }),
        recorder,
    )
    .await?;
    let guard = route_guard(host, config, &resolved, principal, recorder).await?;
    if op == Operation::Responses {
        let lacking = resolved.targets.iter().find(|t| !providers::offers(t.provider.kind, op));
        // Output guardrails read the answer as chat completions, so a native Responses target is
        // translated too while they are in scope.
        if lacking.is_some() || guard.as_ref().is_some_and(|g| g.wants_output()) {
            let mut response =
                responses::translated(host, config, &body, (&resolved, lacking), guard, recorder).await?;
            admitted.mark(&mut response);
            return Ok(response);
        }
    }
    if let Some(transform) = resolved.transform() {
        apply_body_transform(&mut body, transform);
    }
    let mut response = attempt_targets(host, config, body, op, (&resolved, guard.as_ref()), recorder).await?;
    if let Some(guard) = &guard {
        guard.mark(&mut response);
    }
    admitted.mark(&mut response);
    Ok(response)
}

/// The targets in order: retries, fallbacks, delivery.
async fn attempt_targets<H: Host + 'static>(
    host: &Rc<H>,
    config: &Config,
    mut body: Map<String, Value>,
    op: Operation,
    (resolved, guard): (&Resolved<'_>, Option<&Rc<Guard<H>>>),
    recorder: &Recorder<H>,
) -> Result<http::Response<Body>, ApiError> {
    let base64_embeddings = body.get("encoding_format").and_then(Value::as_str) == Some("base64");
    let total_attempts = Cell::new(0);
    let mut last_error = ApiError::bad_gateway("no upstream target was tried");
    for (index, target) in resolved.targets.iter().enumerate() {
        let gen_span = target_span(recorder, target, op.otel_name(), index > 0);
        // Decided per target, as for chat: a refused target is skipped.
        if let Some(guard) = guard {
            if let Err(error) = check_body(guard, &mut body, target).await {
                last_error = skip_target(recorder, gen_span, error);
                continue;
            }
        }
        recorder.snapshot_with(recorder.root(), crate::trace::attrs::GATEWAY_REQUEST_BODY, || {
            serde_json::to_string(&body).unwrap_or_default()
        });
        // A target that cannot be used (no secret, no such endpoint) hands over to the next.
        let prepared = operation_target(&**host, target, op, |provider, key| {
            provider.operation_request(op, target, body.clone(), key)
        });
        let (provider, upstream) = match prepared {
            Ok(prepared) => prepared,
            Err(error) => {
                last_error = skip_target(recorder, gen_span, error);
                continue;
            }
        };
        let attempts = Attempts {
            host,
            config,
            provider,
            target,
            upstream: &Upstream::Replayable(upstream),
            delivery: Delivery::Operation { op, base64_embeddings },
            resolved,
            recorder,
            gen_span,
            total_attempts: &total_attempts,
        };
        match attempts.conclude().await {
            AfterTarget::Deliver(response) => return Ok(response),
            AfterTarget::Stop(error) => return Err(error),
            AfterTarget::Fallback(error) => last_error = error,
        }
    }
    Err(last_error)
}
