//! The OpenAI Responses API (`/v1/responses`) for providers without a native one: the request
//! is translated to a chat completion request (the hub format), and the chat answer (whole or
//! streamed) back into a `response` object or Responses stream events.

mod output;
mod request;
mod stream;

pub use output::{from_completion, Envelope};
pub use request::to_chat;
pub use stream::ResponsesStream;

/// Sets a field of a JSON object (the values here are always objects the gateway built).
fn set(target: &mut serde_json::Value, key: &str, value: serde_json::Value) {
    if let Some(object) = target.as_object_mut() {
        object.insert(key.to_owned(), value);
    }
}

#[cfg(test)]
mod tests;
