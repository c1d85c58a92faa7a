//! The edge AI gateway's core.
//!
//! The contract: this crate does no networking, reads no clock and has no randomness of its
//! own. Time, randomness, key-value storage, secrets and outbound HTTP come in through the
//! [`host::Host`] trait, which each edge target (Cloudflare Workers, Fermyon Spin) implements
//! in a few hundred lines. Translation, SSE parsing and retry decisions are plain functions and
//! small state machines, tested with no runtime at all; the async [`pipeline`] is generic over
//! the host and runs unchanged on both targets and in-process against [`testing::FakeHost`].
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing))]

pub mod auth;
pub mod config;
pub mod config_cache;
pub mod error;
pub mod guard;
pub mod host;
pub mod json;
pub mod mcp;
pub mod multipart;
pub mod ndjson;
pub mod openai;
pub mod origin;
pub mod pipeline;
pub mod policy;
pub mod providers;
pub mod ratelimit;
pub mod response_cache;
pub mod responses;
pub mod retry;
pub mod sse;
pub mod stream_guard;
pub mod testing;
pub mod trace;

pub use config_cache::{ConfigCache, CONFIG_CACHE_TTL_MS};
pub use pipeline::handle;
