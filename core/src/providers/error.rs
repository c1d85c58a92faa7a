//! What translating between OpenAI's shapes and a provider's can fail with, and who is to blame:
//! the client asked for what the provider cannot express (400), or the upstream answered in a
//! way that cannot be read (502), or the provider's configuration cannot serve (503). An error
//! the upstream itself answered is not one of these: it is relayed as the upstream's (see
//! `ChatProvider::error`).

use http::StatusCode;

use crate::error::{ErrorClass, PhaseError};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TranslateError {
    /// The request asks for something the provider cannot express; `field` names it.
    #[error("`{field}` is not supported by provider type `{provider_type}`")]
    Unsupported { provider_type: String, field: String },
    /// The request cannot be translated as written.
    #[error("{message}")]
    Invalid { message: String, param: Option<String> },
    /// The upstream's answer cannot be read.
    #[error("{0}")]
    Malformed(String),
    /// The upstream's stream ended before its answer was complete.
    #[error("{0}")]
    Interrupted(String),
    /// The provider's configuration cannot serve the request.
    #[error("{0}")]
    Misconfigured(String),
}

impl TranslateError {
    pub fn unsupported(provider_type: &str, field: impl Into<String>) -> Self {
        TranslateError::Unsupported { provider_type: provider_type.to_owned(), field: field.into() }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        TranslateError::Invalid { message: message.into(), param: None }
    }

    pub fn malformed(message: impl Into<String>) -> Self {
        TranslateError::Malformed(message.into())
    }

    pub fn interrupted(message: impl Into<String>) -> Self {
        TranslateError::Interrupted(message.into())
    }

    /// Names the request field an invalid request is about.
    #[must_use]
    pub fn with_param(self, param: impl Into<String>) -> Self {
        match self {
            TranslateError::Invalid { message, .. } => TranslateError::Invalid { message, param: Some(param.into()) },
            other => other,
        }
    }
}

impl PhaseError for TranslateError {
    fn class(&self) -> ErrorClass {
        match self {
            TranslateError::Unsupported { .. } | TranslateError::Invalid { .. } => ErrorClass::INVALID_REQUEST,
            TranslateError::Malformed(_) => ErrorClass::upstream(StatusCode::BAD_GATEWAY, "upstream_error"),
            TranslateError::Interrupted(_) => ErrorClass::upstream(StatusCode::BAD_GATEWAY, "stream_interrupted"),
            TranslateError::Misconfigured(_) => ErrorClass::gateway("gateway_unavailable"),
        }
    }

    fn param(&self) -> Option<String> {
        match self {
            TranslateError::Unsupported { field, .. } => Some(field.clone()),
            TranslateError::Invalid { param, .. } => param.clone(),
            _ => None,
        }
    }
}
