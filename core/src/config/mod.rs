//! The configuration document: one typed, versioned JSON value held in the platform's KV store.
//!
//! Parsing refuses unknown fields, and [`Config::from_json`] validates cross references, so a
//! bad document is refused with an error that names the field instead of failing later.

mod custom;
mod guard;
mod validate;

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

pub use custom::{CustomMapping, ResponseMapping, TEMPLATE_VARIABLES};
pub use guard::{DefaultDecision, DetectorSwitches, FailureMode, GuardMode, GuardrailsConfig, RemoteGuardConfig};
pub use validate::ConfigError;

/// The only document version this gateway reads.
pub const CONFIG_VERSION: u32 = 1;

/// The KV key the adapters read the document from.
pub const CONFIG_KV_KEY: &str = "config";

/// The whole gateway configuration.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Document format version; must be 1.
    pub version: u32,
    /// Upstream LLM providers by name; a model is addressed as `{name}/{model id}`.
    #[serde(default)]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Named routes; a route's name is usable as a model and as a path prefix (`/{route}/v1/...`).
    #[serde(default)]
    pub routes: BTreeMap<String, RouteConfig>,
    /// MCP servers by slug, served at `/mcp/{slug}/`.
    #[serde(default)]
    pub mcp_servers: BTreeMap<String, McpServerConfig>,
    /// Global Cedar policies.
    #[serde(default)]
    pub policies: Vec<PolicyConfig>,
    /// Detectors, enforcement mode and the remote guard service.
    #[serde(default)]
    pub guardrails: GuardrailsConfig,
    /// Gateway API keys, stored as SHA-256 hashes.
    #[serde(default)]
    pub keys: Vec<KeyConfig>,
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    #[serde(default)]
    pub limits: LimitsConfig,
    #[serde(default)]
    pub retry: RetryConfig,
    #[serde(default)]
    pub timeouts: TimeoutConfig,
    /// Web origins (`https://app.example`, as browsers send `Origin`) whose pages may call the
    /// gateway; a request from any other origin is refused with 403. Default: none.
    #[serde(default)]
    pub allowed_origins: Vec<String>,
}

/// The wire format a provider speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ProviderType {
    /// OpenAI Chat Completions, `Authorization: Bearer`.
    Openai,
    /// Anthropic Messages API, `x-api-key` and `anthropic-version`.
    Anthropic,
    /// Ollama's native API (`/api/chat`, NDJSON streams); no key by default.
    Ollama,
    /// Google Gemini API: `generateContent` / `streamGenerateContent`, `x-goog-api-key`.
    Gemini,
    /// Azure OpenAI: deployment paths with `api-version`, or the v1 GA path; `api-key` header.
    Azure,
    /// Groq's OpenAI-compatible API.
    Groq,
    /// Mistral's chat completions API.
    Mistral,
    /// Together AI's OpenAI-compatible API.
    Together,
    /// DeepSeek's OpenAI-compatible API.
    Deepseek,
    /// Built in, no network: answers with the last user message. For trying configs and policies.
    Echo,
    /// A raw upstream at `base_url`, with a request template and response mapping (`custom`).
    Custom,
}

/// One upstream provider.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    #[serde(rename = "type")]
    pub kind: ProviderType,
    /// Base URL; defaults to the provider's public API (`https://api.openai.com/v1`,
    /// `https://api.anthropic.com`).
    pub base_url: Option<String>,
    /// Name of the secret holding the provider's API key (Workers secret, Spin variable).
    pub api_key_secret: Option<String>,
    /// Model ids callers may use; empty means any model id is passed through.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// Headers added to every upstream request (values are not secret: use `api_key_secret`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub headers: BTreeMap<String, String>,
    /// Anthropic only: `max_tokens` sent when the client sets none (Anthropic requires one).
    pub default_max_tokens: Option<u32>,
    /// Azure only: `api-version` for deployment paths (e.g. `2024-10-21`); `v1` (the default)
    /// uses the GA path `/openai/v1/...` with the deployment name as the body's `model`.
    pub api_version: Option<String>,
    /// Azure only: model id -> deployment name (a model not listed is its own deployment name).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub deployments: BTreeMap<String, String>,
    /// Custom only: the request template and response mapping; `base_url` is the full URL.
    pub custom: Option<CustomMapping>,
    /// Whether clients may name this provider's models directly (`provider/model`); with
    /// `false` they reach it only through routes, whose controls then always apply.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub direct: bool,
    /// Output tokens a token quota reserves for a request that sets no maximum (else
    /// `default_max_tokens`, else 4096).
    pub default_max_output_tokens: Option<u32>,
}

/// A named, reusable routing configuration.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteConfig {
    /// `simplified` (OpenAI in, `models` out; the default) or `custom` (a raw `upstream`).
    #[serde(default)]
    pub kind: RouteKind,
    /// `provider/model` targets: the first is primary, the rest are fallbacks tried in order.
    /// With weights, the primary is drawn by weight on each request and the others follow in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<RouteTarget>,
    /// Kind `custom` only: the raw upstream, a provider of type `custom`.
    pub upstream: Option<ProviderConfig>,
    /// Upstream statuses that move on to the next model at once, without retrying (e.g. `400`
    /// for a context-length error a larger model can take).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub fallback_on: Vec<u16>,
    /// Cedar policies that apply to this route.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyConfig>,
    /// Overrides `guardrails.mode` on this route.
    pub guard_mode: Option<GuardMode>,
    /// Overrides `telemetry.snapshots` on this route.
    pub snapshots: Option<bool>,
    /// Overrides the global retry settings for this route.
    pub retry: Option<RetryConfig>,
    /// Request and response edits applied on this route.
    pub transform: Option<TransformConfig>,
    /// Requests and tokens per minute on this route, per key (the default) or shared.
    pub rate_limit: Option<RouteRateLimit>,
    /// Exact-match response cache for this route's chat completions.
    pub cache: Option<CacheConfig>,
    /// Output tokens a token quota reserves for a request that sets no maximum (else the
    /// primary provider's, else 4096).
    pub default_max_output_tokens: Option<u32>,
}

/// A quota: requests and/or tokens per minute (at least one).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimitConfig {
    pub requests_per_minute: Option<u64>,
    /// Tokens (prompt plus completion) per minute: reserved from an estimate when a request is
    /// admitted, reconciled from the actual usage when its response ends.
    pub tokens_per_minute: Option<u64>,
}

/// Who shares a route's quota.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum LimitPer {
    /// Each gateway key has its own quota on the route.
    #[default]
    Key,
    /// One quota for all callers of the route.
    Route,
}

/// A route's rate limit.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RouteRateLimit {
    pub requests_per_minute: Option<u64>,
    pub tokens_per_minute: Option<u64>,
    #[serde(default)]
    pub per: LimitPer,
}

impl RouteRateLimit {
    pub fn quota(&self) -> RateLimitConfig {
        RateLimitConfig { requests_per_minute: self.requests_per_minute, tokens_per_minute: self.tokens_per_minute }
    }
}

/// A route's response cache.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CacheConfig {
    /// How long an answer is served from the cache, in seconds (1 to 604800).
    pub ttl_seconds: u64,
    /// Serve one caller's cached answer to another caller (off: entries are per principal).
    #[serde(default)]
    pub shared: bool,
}

/// What a route sends its traffic to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RouteKind {
    /// OpenAI in, any configured provider out (`models`).
    #[default]
    Simplified,
    /// A raw upstream with its own URL, headers and body/response mapping (`upstream`).
    Custom,
}

/// A route's model: `"provider/model"`, or `{"model": "provider/model", "weight": 3}`.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum RouteTarget {
    Model(String),
    Weighted {
        model: String,
        /// Relative share of requests that start with this model (default 1).
        #[serde(default = "one")]
        weight: u32,
    },
}

fn one() -> u32 {
    1
}

impl RouteTarget {
    pub fn model(&self) -> &str {
        match self {
            RouteTarget::Model(m) | RouteTarget::Weighted { model: m, .. } => m,
        }
    }

    pub fn weight(&self) -> Option<u32> {
        match self {
            RouteTarget::Model(_) => None,
            RouteTarget::Weighted { weight, .. } => Some(*weight),
        }
    }
}

/// Header and body edits on a route.
#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TransformConfig {
    /// Headers set on, or removed from, the upstream request (values are not secret).
    #[serde(default)]
    pub request_headers: HeaderEdits,
    /// Headers set on, or removed from, the response to the client.
    #[serde(default)]
    pub response_headers: HeaderEdits,
    /// Request body fields set when the client did not send them.
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub body_defaults: serde_json::Map<String, serde_json::Value>,
    /// Request body fields always set, whatever the client sent (`model` cannot be overridden).
    #[serde(default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub body_overrides: serde_json::Map<String, serde_json::Value>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HeaderEdits {
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remove: Vec<String>,
}

/// Whether an MCP server is served.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum ServerStatus {
    #[default]
    Active,
    Disabled,
}

/// The protocol era spoken to an MCP server.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub enum McpProtocol {
    #[default]
    #[serde(rename = "auto")]
    Auto,
    #[serde(rename = "2026-07-28")]
    Current,
    #[serde(rename = "legacy")]
    Legacy,
}

/// How the gateway authenticates to an MCP server.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "mode", rename_all = "snake_case", deny_unknown_fields)]
pub enum CredentialConfig {
    /// No credential.
    None,
    /// One shared credential from a secret, sent as `Authorization: Bearer`.
    Internal { secret: String },
    /// The client's own `Authorization: Bearer` is forwarded unchanged.
    OauthPassthrough,
    /// The caller's token is fetched from an admin API (see the README for the request shape).
    TokenBroker {
        url: String,
        /// Secret sent to the broker as `Authorization: Bearer`, if it wants one.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        secret: Option<String>,
    },
}

/// A registered MCP server.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct McpServerConfig {
    pub url: String,
    #[serde(default)]
    pub status: ServerStatus,
    #[serde(default = "credential_none")]
    pub credential: CredentialConfig,
    /// Tools callers may see and call; none by default, `"*"` for all.
    #[serde(default)]
    pub tools: Vec<String>,
    /// The protocol era the gateway speaks to this server: `auto` (the default: each client's
    /// own era, falling back to the legacy handshake when a current-era request is refused as
    /// a legacy server refuses it), `2026-07-28` (current era only: legacy clients are bridged),
    /// or `legacy` (handshake and sessions only: current-era clients are bridged).
    #[serde(default)]
    pub protocol: McpProtocol,
    /// `oauth_passthrough` only: the authorization servers the gateway's protected-resource
    /// metadata names; empty means those of the server's own metadata (fetched, cached).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub authorization_servers: Vec<String>,
    /// Cedar policies that apply to this server's traffic.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub policies: Vec<PolicyConfig>,
    /// Overrides `guardrails.mode` for this server.
    pub guard_mode: Option<GuardMode>,
    /// Overrides `telemetry.snapshots` for this server.
    pub snapshots: Option<bool>,
}

fn credential_none() -> CredentialConfig {
    CredentialConfig::None
}

/// A Cedar policy set, by id.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PolicyConfig {
    pub id: String,
    /// Cedar policy text.
    pub cedar: String,
}

/// What kind of caller a key stands for (the Cedar principal type).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PrincipalKind {
    User,
    Agent,
    ApiKey,
}

/// A gateway API key: only its SHA-256 is stored.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct KeyConfig {
    /// Lowercase hex SHA-256 of the key.
    pub sha256: String,
    pub principal: PrincipalConfig,
    /// Requests and tokens per minute for this key, across every route and model.
    pub rate_limit: Option<RateLimitConfig>,
    /// The routes this key may use (`*` matches any run of characters); absent: any.
    pub allowed_routes: Option<Vec<String>>,
    /// The `provider/model` names this key may call directly (globs); absent: any. `[]` keeps
    /// the key to routes.
    pub allowed_models: Option<Vec<String>>,
}

impl KeyConfig {
    /// Whether this key may use the route `name`.
    pub fn allows_route(&self, name: &str) -> bool {
        self.allowed_routes.as_ref().is_none_or(|globs| globs.iter().any(|g| glob_match(g, name)))
    }

    /// Whether this key may name `model` (`provider/model`) directly.
    pub fn allows_model(&self, model: &str) -> bool {
        self.allowed_models.as_ref().is_none_or(|globs| globs.iter().any(|g| glob_match(g, model)))
    }
}

/// Whether `text` matches `pattern`, where `*` stands for any run of characters (none included).
pub fn glob_match(pattern: &str, text: &str) -> bool {
    let mut parts = pattern.split('*');
    let first = parts.next().unwrap_or_default();
    let Some(mut rest) = text.strip_prefix(first) else { return false };
    let parts: Vec<&str> = parts.collect();
    let Some((last, middle)) = parts.split_last() else { return rest.is_empty() };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = rest.get(at + part.len()..).unwrap_or_default(),
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// The caller a key maps to.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PrincipalConfig {
    pub kind: PrincipalKind,
    pub id: String,
    /// Attributes available to Cedar policies.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub attributes: BTreeMap<String, serde_json::Value>,
}

/// Where traces go.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// OTLP/HTTP JSON base URL (the gateway posts to `{collector_url}/v1/traces`); with none,
    /// each trace goes to the runtime log as one JSON line.
    pub collector_url: Option<String>,
    /// Headers sent to the collector, by header name -> name of the secret holding the value.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub collector_headers: BTreeMap<String, String>,
    /// Longest wait for the collector (default 2 s); export never delays a response.
    #[serde(default = "default_export_timeout_ms")]
    pub export_timeout_ms: u64,
    /// With no collector, what each request writes to the runtime log: unset (the default), one
    /// short line (trace id, summary, audit records' bodies); `true`, the whole trace and its audit
    /// records as OTLP JSON; `false`, nothing.
    pub log_traces: Option<bool>,
    /// Prices by `provider/model`, for `gateway.cost.usd` on traces.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub prices: BTreeMap<String, PriceConfig>,
    /// Payload snapshots (request and response bodies, PII and secrets redacted by the
    /// detectors, capped) on traces; off by default. Routes and MCP servers may override it.
    #[serde(default)]
    pub snapshots: bool,
    /// Largest snapshot kept, in bytes (the rest is cut, and the cut is marked).
    #[serde(default = "default_snapshot_max_bytes")]
    pub snapshot_max_bytes: usize,
}

fn default_snapshot_max_bytes() -> usize {
    4_096
}

fn is_true(value: &bool) -> bool {
    *value
}

fn yes() -> bool {
    true
}

fn default_export_timeout_ms() -> u64 {
    2_000
}

impl Default for TelemetryConfig {
    fn default() -> Self {
        TelemetryConfig {
            collector_url: None,
            collector_headers: BTreeMap::new(),
            export_timeout_ms: default_export_timeout_ms(),
            log_traces: None,
            prices: BTreeMap::new(),
            snapshots: false,
            snapshot_max_bytes: default_snapshot_max_bytes(),
        }
    }
}

/// US dollars per million tokens.
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PriceConfig {
    pub input_per_million: f64,
    pub output_per_million: f64,
    /// Price of input tokens served from the provider's cache (defaults to the input price).
    pub cached_input_per_million: Option<f64>,
}

impl PriceConfig {
    /// The cost of one completion's usage, in US dollars.
    pub fn cost(&self, usage: crate::openai::Usage) -> f64 {
        let cached = usage.cached_tokens.min(usage.prompt_tokens) as f64;
        let uncached = usage.prompt_tokens as f64 - cached;
        (uncached * self.input_per_million
            + cached * self.cached_input_per_million.unwrap_or(self.input_per_million)
            + usage.completion_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

/// Input limits.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body accepted, in bytes (default 8 MiB).
    #[serde(default = "default_max_request_bytes")]
    pub max_request_bytes: usize,
    /// Largest non-streamed upstream body read, in bytes (default 32 MiB).
    #[serde(default = "default_max_response_bytes")]
    pub max_response_bytes: usize,
    /// Largest audio upload (`multipart/form-data`) passed through, in bytes (default 25 MiB, as
    /// OpenAI's own limit).
    #[serde(default = "default_max_upload_bytes")]
    pub max_upload_bytes: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            max_request_bytes: default_max_request_bytes(),
            max_response_bytes: default_max_response_bytes(),
            max_upload_bytes: default_max_upload_bytes(),
        }
    }
}

fn default_max_upload_bytes() -> usize {
    25 * 1024 * 1024
}

fn default_max_request_bytes() -> usize {
    8 * 1024 * 1024
}
fn default_max_response_bytes() -> usize {
    32 * 1024 * 1024
}

/// Retries on 429, 5xx and connection failures.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Attempts per target, the first included (default 3).
    #[serde(default = "default_attempts")]
    pub attempts: u32,
    /// Backoff before the first retry; doubles each time (default 200 ms).
    #[serde(default = "default_initial_backoff_ms")]
    pub initial_backoff_ms: u64,
    /// Ceiling for one backoff (default 5 s).
    #[serde(default = "default_max_backoff_ms")]
    pub max_backoff_ms: u64,
    /// Ceiling for an upstream's `Retry-After` (default 10 s); longer asks are not waited out.
    #[serde(default = "default_max_retry_after_ms")]
    pub max_retry_after_ms: u64,
}

impl Default for RetryConfig {
    fn default() -> Self {
        RetryConfig {
            attempts: default_attempts(),
            initial_backoff_ms: default_initial_backoff_ms(),
            max_backoff_ms: default_max_backoff_ms(),
            max_retry_after_ms: default_max_retry_after_ms(),
        }
    }
}

fn default_attempts() -> u32 {
    3
}
fn default_initial_backoff_ms() -> u64 {
    200
}
fn default_max_backoff_ms() -> u64 {
    5_000
}
fn default_max_retry_after_ms() -> u64 {
    10_000
}

/// Upstream timeouts, so no client waits forever.
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TimeoutConfig {
    /// Until the upstream's response head arrives (default 60 s).
    #[serde(default = "default_first_byte_ms")]
    pub first_byte_ms: u64,
    /// Longest silence between two body chunks (default 60 s).
    #[serde(default = "default_idle_ms")]
    pub idle_ms: u64,
}

impl Default for TimeoutConfig {
    fn default() -> Self {
        TimeoutConfig { first_byte_ms: default_first_byte_ms(), idle_ms: default_idle_ms() }
    }
}

fn default_first_byte_ms() -> u64 {
    60_000
}
fn default_idle_ms() -> u64 {
    60_000
}

impl Config {
    /// Parses and validates a document; the error names the offending field.
    pub fn from_json(bytes: &[u8]) -> Result<Config, ConfigError> {
        let de = &mut serde_json::Deserializer::from_slice(bytes);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let path = e.path().to_string();
            ConfigError::new(if path == "." { String::new() } else { path }, e.into_inner().to_string())
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The JSON Schema of the document, as checked in at `config/schema.json`.
    pub fn json_schema() -> serde_json::Value {
        serde_json::to_value(schemars::schema_for!(Config)).unwrap_or_default()
    }
}
