//! Keeps the parsed configuration, and the policies parsed for it since, for a few seconds where
//! the runtime reuses an instance (a warm Worker isolate), so a hot path does not read KV and
//! parse on every request. The configuration itself stays pure data.

use std::cell::RefCell;
use std::rc::Rc;

use bytes::Bytes;

use crate::config::Config;
use crate::policy::PolicyCache;

/// How long a parsed configuration is reused. A pushed document takes effect within this
/// (plus the platform's own KV propagation). Invalid documents are never cached.
pub const CONFIG_CACHE_TTL_MS: u64 = 5_000;

/// The last good configuration, the document it was parsed from, and when it was read. Spin
/// starts every request with an empty one.
#[derive(Debug, Default)]
pub struct ConfigCache {
    entry: RefCell<Option<Entry>>,
}

#[derive(Debug)]
struct Entry {
    read_at: u64,
    document: Bytes,
    loaded: Loaded,
}

/// A parsed configuration and the policies parsed for it (on first use of each scope).
#[derive(Debug, Clone)]
pub struct Loaded {
    pub config: Rc<Config>,
    pub policies: Rc<PolicyCache>,
}

impl Loaded {
    /// A configuration just parsed, with no policies parsed yet.
    pub fn new(config: Rc<Config>) -> Self {
        Loaded { config, policies: Rc::default() }
    }
}

impl ConfigCache {
    /// The cached configuration, if it was read less than [`CONFIG_CACHE_TTL_MS`] before `now`.
    pub fn fresh(&self, now: u64) -> Option<Loaded> {
        let entry = self.entry.borrow();
        let entry = entry.as_ref()?;
        (now.saturating_sub(entry.read_at) < CONFIG_CACHE_TTL_MS && now >= entry.read_at).then(|| entry.loaded.clone())
    }

    /// The cached configuration when `document`, just read again, is the one it was parsed from:
    /// kept (with the policies it has parsed since) and fresh again from `now`.
    pub fn unchanged(&self, now: u64, document: &[u8]) -> Option<Loaded> {
        let mut entry = self.entry.borrow_mut();
        let entry = entry.as_mut().filter(|entry| entry.document == document)?;
        entry.read_at = now;
        Some(entry.loaded.clone())
    }

    /// Forgets the cached document (a new one was just stored through this instance).
    pub fn clear(&self) {
        *self.entry.borrow_mut() = None;
    }

    pub fn store(&self, now: u64, document: Bytes, loaded: Loaded) {
        *self.entry.borrow_mut() = Some(Entry { read_at: now, document, loaded });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = ConfigCache::default();
        assert!(cache.fresh(0).is_none());
        let document = Bytes::from_static(br#"{"version": 1}"#);
        let config = Rc::new(Config::from_json(&document).unwrap());
        cache.store(1_000, document, Loaded::new(config));
        assert!(cache.fresh(1_000 + CONFIG_CACHE_TTL_MS - 1).is_some());
        assert!(cache.fresh(1_000 + CONFIG_CACHE_TTL_MS).is_none());
        assert!(cache.fresh(999).is_none(), "a clock going backwards does not extend an entry");
    }

    #[test]
    fn an_unchanged_document_keeps_its_parsed_configuration() {
        let cache = ConfigCache::default();
        let document = Bytes::from_static(br#"{"version": 1}"#);
        let config = Rc::new(Config::from_json(&document).unwrap());
        cache.store(1_000, document.clone(), Loaded::new(Rc::clone(&config)));
        let later = 1_000 + CONFIG_CACHE_TTL_MS;
        assert!(cache.fresh(later).is_none());
        assert!(cache.unchanged(later, br#"{"version": 1, "keys": []}"#).is_none());
        let kept = cache.unchanged(later, &document).unwrap();
        assert!(Rc::ptr_eq(&kept.config, &config));
        assert!(cache.fresh(later + 1).is_some(), "fresh again from the second read");
    }
}
