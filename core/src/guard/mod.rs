//! Guardrails: detectors turn text into signals, Cedar ([`crate::policy`]) decides, and the
//! outcome is applied (deny, redact, alert) or, in monitor mode, only recorded.

pub mod detect;
pub mod redact;
pub mod remote;

use std::collections::BTreeSet;

pub use detect::{Category, Detectors, Finding};

use crate::config::DetectorSwitches;

impl From<DetectorSwitches> for Detectors {
    fn from(s: DetectorSwitches) -> Self {
        Detectors { pii: s.pii, secrets: s.secrets, injection: s.injection, tool_args: s.tool_args }
    }
}

/// What the detectors (and the remote guard service) found in one inspected payload: the Cedar
/// context is built from it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// Highest score per family: pii, secret, injection, tool_args.
    pub pii: u8,
    pub secret: u8,
    pub injection: u8,
    pub tool_args: u8,
    /// Highest score the remote guard service gave.
    pub remote: u8,
    pub pii_kinds: BTreeSet<String>,
    pub pii_count: u32,
    pub secret_kinds: BTreeSet<String>,
    pub secret_count: u32,
    /// Every finding kind, the remote service's signal names included.
    pub kinds: BTreeSet<String>,
    /// The remote guard service's own decision was `deny`.
    pub remote_deny: bool,
}

impl Signals {
    /// Folds findings in (several texts of one payload, or the chunks of a stream so far).
    pub fn add(&mut self, findings: &[Finding]) {
        for f in findings {
            let slot = match f.category {
                Category::Pii => {
                    self.pii_kinds.insert(f.kind.to_owned());
                    self.pii_count += 1;
                    &mut self.pii
                }
                Category::Secret => {
                    self.secret_kinds.insert(f.kind.to_owned());
                    self.secret_count += 1;
                    &mut self.secret
                }
                Category::Injection => &mut self.injection,
                Category::ToolArgs => &mut self.tool_args,
            };
            *slot = (*slot).max(f.score.min(100));
            self.kinds.insert(f.kind.to_owned());
        }
    }

    /// Highest score of any family.
    pub fn max_score(&self) -> u8 {
        [self.pii, self.secret, self.injection, self.tool_args, self.remote].into_iter().max().unwrap_or(0)
    }

    /// A short form for traces and logs: `kind` names only, never matched text.
    pub fn summary(&self) -> String {
        self.kinds.iter().map(String::as_str).collect::<Vec<_>>().join(",")
    }
}

impl Category {
    /// The family a policy annotation or config names (`pii`, `secret`, `injection`, `tool_args`).
    pub fn parse(name: &str) -> Option<Category> {
        [Category::Pii, Category::Secret, Category::Injection, Category::ToolArgs]
            .into_iter()
            .find(|c| c.as_str() == name)
    }
}
