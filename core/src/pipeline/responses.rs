//! `/v1/responses` through chat: for routes with a target that has no native Responses API, the
//! request is translated to chat and run like any chat request (retries, fallbacks, traces); the
//! answer is delivered in the Responses API's shape, incrementally when streamed (from the typed
//! chunks as they are released: see `stream::Encoder`).

use std::rc::Rc;

use serde_json::{Map, Value};

use super::chat;
use super::context::RequestContext;
use super::guard::Guard;
use super::resolve::Resolved;
use crate::error::ApiError;
use crate::host::{Body, Host};
use crate::providers::Target;
use crate::responses::{to_chat, Envelope};

pub(crate) async fn translated<H: Host + 'static>(
    cx: &RequestContext<'_, H>,
    body: &Map<String, Value>,
    (resolved, needs_translation): (&Resolved<'_>, Option<&Target<'_>>),
    guard: Option<Rc<Guard<H>>>,
) -> Result<http::Response<Body>, ApiError> {
    let chat = to_chat(body).map_err(|mut e| {
        let why = match needs_translation {
            Some(target) => format!("provider `{}` has no native `/v1/responses`", target.provider_name),
            // Output guardrails read chat completions (and their streams) as they pass.
            None => "output guardrails are in scope on this route".to_owned(),
        };
        e.message = format!("{why}, so the gateway translates to chat completions: {}", e.message);
        e
    })?;
    let envelope = Envelope::new(body, format!("resp_{:016x}", cx.host.random_u64()), cx.host.now_millis() / 1000);
    chat::run(cx, chat, resolved, (guard, Some(&envelope))).await
}
