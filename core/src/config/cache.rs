//! Keeps the parsed configuration for a few seconds where the runtime reuses an instance
//! (a warm Worker isolate), so a hot path does not read KV and parse on every request.

use std::cell::RefCell;
use std::rc::Rc;

use super::Config;

/// How long a parsed configuration is reused. A pushed document takes effect within this
/// (plus the platform's own KV propagation). Invalid documents are never cached.
pub const CONFIG_CACHE_TTL_MS: u64 = 5_000;

/// The last good configuration and when it was read. Spin starts every request with an empty one.
#[derive(Debug, Default)]
pub struct ConfigCache {
    entry: RefCell<Option<(u64, Rc<Config>)>>,
}

impl ConfigCache {
    /// The cached configuration, if it was read less than [`CONFIG_CACHE_TTL_MS`] before `now`.
    pub fn fresh(&self, now: u64) -> Option<Rc<Config>> {
        let entry = self.entry.borrow();
        let (read_at, config) = entry.as_ref()?;
        (now.saturating_sub(*read_at) < CONFIG_CACHE_TTL_MS && now >= *read_at).then(|| Rc::clone(config))
    }

    /// Forgets the cached document (a new one was just stored through this instance).
    pub fn clear(&self) {
        *self.entry.borrow_mut() = None;
    }

    pub fn store(&self, now: u64, config: Rc<Config>) {
        *self.entry.borrow_mut() = Some((now, config));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_expire_after_the_ttl() {
        let cache = ConfigCache::default();
        assert!(cache.fresh(0).is_none());
        let config = Rc::new(Config::from_json(br#"{"version": 1}"#).unwrap());
        cache.store(1_000, config);
        assert!(cache.fresh(1_000 + CONFIG_CACHE_TTL_MS - 1).is_some());
        assert!(cache.fresh(1_000 + CONFIG_CACHE_TTL_MS).is_none());
        assert!(cache.fresh(999).is_none(), "a clock going backwards does not extend an entry");
    }
}
