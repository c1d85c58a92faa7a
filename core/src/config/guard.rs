//! Guardrail settings: which detectors run, enforce or monitor, the default Cedar decision and
//! the optional remote guard service.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Global guardrail settings (`guardrails` in the document).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct GuardrailsConfig {
    /// `enforce` (the default) or `monitor` (never blocks or rewrites; records what enforce
    /// would have done). Routes and MCP servers may override it with their own `guard_mode`.
    #[serde(default)]
    pub mode: GuardMode,
    /// The decision when no policy says otherwise: `allow` (the default: write `forbid` policies)
    /// or `deny` (write `permit` policies for what is allowed).
    #[serde(default)]
    pub default_decision: DefaultDecision,
    /// The built-in detector families; all on by default. They run only where a policy or the
    /// remote guard service is in scope.
    #[serde(default)]
    pub detectors: DetectorSwitches,
    /// Characters of streamed model output held back so a redaction can still be applied before
    /// the bytes leave (only while output policies are in scope).
    #[serde(default = "default_hold_back")]
    pub stream_hold_back_chars: usize,
    /// An HTTP guard service consulted besides the built-in detectors.
    pub remote: Option<RemoteGuardConfig>,
}

impl Default for GuardrailsConfig {
    fn default() -> Self {
        GuardrailsConfig {
            mode: GuardMode::default(),
            default_decision: DefaultDecision::default(),
            detectors: DetectorSwitches::default(),
            stream_hold_back_chars: default_hold_back(),
            remote: None,
        }
    }
}

fn default_hold_back() -> usize {
    256
}

fn yes() -> bool {
    true
}

/// Whether guardrail outcomes are applied or only recorded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum GuardMode {
    #[default]
    Enforce,
    Monitor,
}

/// What Cedar answers when no policy is satisfied.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum DefaultDecision {
    #[default]
    Allow,
    Deny,
}

/// The built-in detector families.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct DetectorSwitches {
    #[serde(default = "yes")]
    pub pii: bool,
    #[serde(default = "yes")]
    pub secrets: bool,
    #[serde(default = "yes")]
    pub injection: bool,
    #[serde(default = "yes")]
    pub tool_args: bool,
}

impl Default for DetectorSwitches {
    fn default() -> Self {
        DetectorSwitches { pii: true, secrets: true, injection: true, tool_args: true }
    }
}

/// A Shield-style guard service the gateway posts each inspected text to (shapes in the README).
#[serde_with::skip_serializing_none]
#[derive(Debug, Clone, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RemoteGuardConfig {
    pub url: String,
    /// Secret holding the service's key, sent as `Authorization: Bearer`.
    pub api_key_secret: Option<String>,
    /// Longest wait for a verdict.
    #[serde(default = "default_guard_timeout")]
    pub timeout_ms: u64,
    /// `open` (the default: an unreachable, failing or slow service is logged and skipped) or
    /// `closed` (the request is refused with a 503).
    #[serde(default)]
    pub on_failure: FailureMode,
    /// A streamed answer is asked about in windows of at least this many characters of released
    /// output (text and tool-call arguments), each delivered only once the service allowed it.
    #[serde(default = "default_stream_window")]
    pub stream_window_chars: usize,
}

fn default_guard_timeout() -> u64 {
    500
}

fn default_stream_window() -> usize {
    1000
}

/// What a guard service failure does.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum FailureMode {
    #[default]
    Open,
    Closed,
}
