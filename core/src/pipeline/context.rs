//! The request context: what every phase of an authenticated request reads.

use std::rc::Rc;

use super::recorder::Recorder;
use crate::config::{Config, PrincipalConfig};
use crate::host::Host;
use crate::policy::PolicyCache;

/// What every phase of an authenticated request reads: the host, the configuration in force,
/// the request's head, the caller and its trace.
pub(crate) struct RequestContext<'a, H: Host + 'static> {
    pub host: &'a Rc<H>,
    pub config: &'a Config,
    /// The policies parsed for `config` so far (kept beside it in the instance's cache).
    pub policies: &'a PolicyCache,
    pub parts: &'a http::request::Parts,
    pub principal: &'a PrincipalConfig,
    pub recorder: &'a Recorder<H>,
}
