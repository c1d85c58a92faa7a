//! OpenAI-compatible vendors: what each one does differently, as data. Adding a vendor is a few
//! lines here, not a module.

use super::openai::{Auth, Dialect};
use super::Operation::{Embeddings, ImageGenerations, Moderations, Responses, Speech, Transcriptions, Translations};
use super::{join_url, Target};
use crate::providers::TranslateError;

/// `{base_url or the vendor's default}/{path}`.
fn under_base(target: &Target<'_>, default_base: &str, path: &str) -> Result<String, TranslateError> {
    Ok(join_url(target.provider.base_url.as_deref().unwrap_or(default_base), path))
}

/// What a vendor does when it does as OpenAI does; each vendor below names only where it differs.
const AS_OPENAI: Dialect = Dialect {
    name: "",
    otel_name: "",
    default_base: "",
    operations: &[],
    auth: Auth::Bearer,
    rejected: &[],
    rejected_in_messages: &[],
    renamed: &[],
    single_choice: false,
    required_tool_choice: "required",
    stream_options: true,
    url: under_base,
    model: |t| t.model.clone(),
};

pub static OPENAI: Dialect = Dialect {
    name: "openai",
    otel_name: "openai",
    default_base: "https://api.openai.com/v1",
    operations: &[Embeddings, ImageGenerations, Moderations, Speech, Responses, Transcriptions, Translations],
    ..AS_OPENAI
};

/// Groq refuses these with 400 and needs `n` = 1; usage may come in `x_groq.usage`.
pub static GROQ: Dialect = Dialect {
    name: "groq",
    otel_name: "groq",
    default_base: "https://api.groq.com/openai/v1",
    operations: &[Speech, Transcriptions, Translations],
    rejected: &["logprobs", "logit_bias", "top_logprobs"],
    rejected_in_messages: &["name"],
    single_choice: true,
    ..AS_OPENAI
};

/// Mistral answers unknown fields with 422 `extra_forbidden`; its usage arrives unasked.
pub static MISTRAL: Dialect = Dialect {
    name: "mistral",
    otel_name: "mistral_ai",
    default_base: "https://api.mistral.ai/v1",
    operations: &[Embeddings, Transcriptions],
    rejected: &["logit_bias", "logprobs", "top_logprobs", "user", "service_tier", "store", "metadata"],
    renamed: &[("seed", "random_seed"), ("max_completion_tokens", "max_tokens")],
    required_tool_choice: "any",
    stream_options: false,
    ..AS_OPENAI
};

/// Together's `logprobs` is a count, not OpenAI's boolean; its usage arrives on the last chunk unasked.
pub static TOGETHER: Dialect = Dialect {
    name: "together",
    otel_name: "together_ai",
    default_base: "https://api.together.ai/v1",
    operations: &[Embeddings, ImageGenerations, Speech, Transcriptions, Translations],
    rejected: &["logprobs", "top_logprobs", "service_tier", "store", "metadata"],
    renamed: &[("max_completion_tokens", "max_tokens")],
    stream_options: false,
    ..AS_OPENAI
};

/// DeepSeek documents a smaller parameter set than OpenAI's; what it lacks is refused.
pub static DEEPSEEK: Dialect = Dialect {
    name: "deepseek",
    otel_name: "deepseek",
    default_base: "https://api.deepseek.com",
    rejected: &["n", "seed", "service_tier", "store", "metadata", "parallel_tool_calls"],
    renamed: &[("max_completion_tokens", "max_tokens")],
    ..AS_OPENAI
};

/// Azure's deployment name for a model: from `deployments`, else the model id itself.
fn azure_deployment(t: &Target<'_>) -> String {
    t.provider.deployments.get(&t.model).cloned().unwrap_or_else(|| t.model.clone())
}

/// `api_version` `v1` (or none): `{endpoint}/openai/v1/chat/completions` with the deployment as
/// `model`; a dated version: `{endpoint}/openai/deployments/{deployment}/chat/completions?api-version=`.
/// The Responses API is served on the v1 path only.
fn azure_url(t: &Target<'_>, _default_base: &str, path: &str) -> Result<String, TranslateError> {
    let base = t.provider.base_url.as_deref().unwrap_or_default();
    match t.provider.api_version.as_deref() {
        None | Some("v1") => Ok(join_url(base, &format!("openai/v1/{path}"))),
        Some(_) if path == "responses" => Ok(join_url(base, "openai/v1/responses")),
        Some(version) => {
            let deployment = azure_deployment(t);
            if !deployment.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')) {
                return Err(TranslateError::invalid(format!("`{deployment}` is not a valid Azure deployment name"))
                    .with_param("model"));
            }
            Ok(format!("{}?api-version={version}", join_url(base, &format!("openai/deployments/{deployment}/{path}"))))
        }
    }
}

/// Azure has no public default: `base_url` (the resource endpoint) is required.
pub static AZURE: Dialect = Dialect {
    name: "azure",
    otel_name: "azure.ai.openai",
    operations: &[Embeddings, ImageGenerations, Speech, Responses, Transcriptions, Translations],
    auth: Auth::Header("api-key"),
    url: azure_url,
    model: azure_deployment,
    ..AS_OPENAI
};
