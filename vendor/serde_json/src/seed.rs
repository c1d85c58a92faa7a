//! (Vendored change, see vendor/README.md.) The hash keys of `preserve_order` maps, which an
//! embedder can reseed.
//!
//! Upstream keys these maps with std's `RandomState`, whose keys std draws once per thread and
//! caches. A WebAssembly component pre-initialized by Wizer keeps that cache in its snapshot, so
//! every instance hashes client-chosen object keys with the same (known) keys, and a client can
//! send an object whose keys all collide. Here the keys come from [`reseed`] once the embedder
//! has called it (with fresh randomness, at the start of each request), and from std's
//! `RandomState` before that. Like std, each new map takes the next `k0`.

use core::cell::Cell;
use core::hash::BuildHasher;
#[allow(deprecated)]
use core::hash::SipHasher;
use std::collections::hash_map::RandomState;

std::thread_local! {
    static KEYS: Cell<Option<(u64, u64)>> = const { Cell::new(None) };
}

/// Makes every map created from now on (on this thread) hash with keys derived from `k0`, `k1`.
pub fn reseed(k0: u64, k1: u64) {
    KEYS.with(|keys| keys.set(Some((k0, k1))));
}

/// The keys the next map will take (for tests).
pub fn next_keys() -> (u64, u64) {
    KEYS.with(|keys| keys.get().unwrap_or_else(from_std))
}

fn from_std() -> (u64, u64) {
    let std = RandomState::new();
    (std.hash_one(0x5eed_u64), std.hash_one(0xca11_u64))
}

/// The hasher builder of `Map`: SipHash keyed per map.
#[derive(Clone, Debug)]
pub struct SeededState {
    k0: u64,
    k1: u64,
}

impl Default for SeededState {
    fn default() -> Self {
        KEYS.with(|keys| {
            let (k0, k1) = keys.get().unwrap_or_else(from_std);
            keys.set(Some((k0.wrapping_add(1), k1)));
            SeededState { k0, k1 }
        })
    }
}

impl BuildHasher for SeededState {
    #[allow(deprecated)]
    type Hasher = SipHasher;

    #[allow(deprecated)]
    fn build_hasher(&self) -> SipHasher {
        SipHasher::new_with_keys(self.k0, self.k1)
    }
}
