//! The remote guard service's wire shapes (documented in the README): the gateway posts one
//! inspected payload and merges the signals it gets back.

use serde::{Deserialize, Serialize};

use super::Signals;

/// What the gateway posts.
#[derive(Debug, Serialize)]
pub struct GuardRequest<'a> {
    /// The inspected text (several texts of one payload joined by blank lines).
    pub content: &'a str,
    /// `prompt`, `tool_call`, `tool_response` or `response`.
    pub content_type: &'static str,
    /// The Cedar action of this lifecycle point.
    pub action: &'static str,
    pub tool: Option<&'a str>,
    pub model: Option<&'a str>,
    /// MCP session id, when the client has one.
    pub session: Option<&'a str>,
    pub metadata: GuardMetadata<'a>,
}

/// Who and where.
#[derive(Debug, Serialize)]
pub struct GuardMetadata<'a> {
    pub principal: &'a str,
    pub principal_kind: &'a str,
    pub route: Option<&'a str>,
    pub server: Option<&'a str>,
    pub request_id: &'a str,
}

/// What the service answers.
#[derive(Debug, Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(default)]
pub struct GuardAnswer {
    /// `allow`, `deny` or `flag`.
    pub decision: GuardDecision,
    pub signals: Vec<RemoteSignal>,
    pub reason: Option<String>,
}

#[derive(Debug, Clone, Copy, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum GuardDecision {
    #[default]
    Allow,
    Deny,
    Flag,
}

/// One named score from the service.
#[derive(Debug, Clone, Deserialize, PartialEq, Eq)]
pub struct RemoteSignal {
    pub name: String,
    /// 0 to 100 (larger values are clamped).
    pub score: u32,
}

impl GuardAnswer {
    pub fn parse(bytes: &[u8]) -> Result<GuardAnswer, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("the guard service's answer is not understood: {e}"))
    }

    /// Adds the service's signals: `scores.remote` is the highest, each name joins `signals`.
    pub fn merge_into(&self, signals: &mut Signals) {
        for s in &self.signals {
            signals.remote = signals.remote.max(u8::try_from(s.score.min(100)).unwrap_or(100));
            signals.kinds.insert(s.name.clone());
        }
        signals.remote_deny |= self.decision == GuardDecision::Deny;
        if self.decision == GuardDecision::Flag {
            signals.kinds.insert("remote_flag".to_owned());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_merge_their_highest_score_and_names() {
        let answer = GuardAnswer::parse(
            br#"{"decision": "flag", "signals": [{"name": "toxicity", "score": 40}, {"name": "self_harm", "score": 250}]}"#,
        )
        .unwrap();
        let mut signals = Signals::default();
        answer.merge_into(&mut signals);
        assert_eq!(signals.remote, 100);
        assert!(signals.kinds.contains("toxicity") && signals.kinds.contains("remote_flag"));
        assert!(!signals.remote_deny);
        assert_eq!(GuardAnswer::parse(b"{}").unwrap().decision, GuardDecision::Allow);
        assert!(GuardAnswer::parse(b"{\"decision\": \"maybe\"}").is_err());
    }
}
