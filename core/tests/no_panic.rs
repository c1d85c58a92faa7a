//! Property tests: no input panics the parsers, the stream translators or the pipeline.
//!
//! A bounded, seeded fuzz run (no extra tooling): random bytes and mutations of the recorded
//! fixtures, fed in random slices. `FUZZ_SECONDS` sets the budget per target (default 2),
//! `FUZZ_SEED` replays a run; a failure prints the seed and the input.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::rc::Rc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use gateway_core::auth::hash_key;
use gateway_core::config::{Config, ProviderType};
use gateway_core::host::Body;
use gateway_core::providers::{chat_provider, ResponseContext};
use gateway_core::responses;
use gateway_core::sse::SseParser;
use gateway_core::testing::{FakeAnswer, FakeHost};
use gateway_core::ConfigCache;

/// The fuzz targets (`fuzz/src/lib.rs`): the same cases, here fed random and mutated inputs.
#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod targets;

/// xorshift64*: small, fast, reproducible.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

const INTERESTING: &[&[u8]] = &[
    b"\n",
    b"\r\n",
    b"\n\n",
    b"data: ",
    b"event: ",
    b"[DONE]",
    b"{",
    b"}",
    b"\"",
    b":",
    b",",
    b"null",
    b"\xff",
    b"\x00",
    b"{\"type\":\"message_stop\"}",
    b"{\"type\":\"content_block_delta\",\"index\":9,\"delta\":{\"type\":\"input_json_delta\",\"partial_json\":\"x\"}}",
    b"{\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}]}",
    b"18446744073709551616",
    b"-1",
    b"1e999",
];

/// Mutates a seed input: byte flips, insertions of interesting tokens, deletions, truncation.
fn mutate(rng: &mut Rng, seed: &[u8]) -> Vec<u8> {
    let mut out = seed.to_vec();
    for _ in 0..=rng.below(8) {
        match rng.below(5) {
            0 if !out.is_empty() => {
                let i = rng.below(out.len());
                out[i] = rng.next() as u8;
            }
            1 => {
                let token = INTERESTING[rng.below(INTERESTING.len())];
                let i = rng.below(out.len() + 1);
                out.splice(i..i, token.iter().copied());
            }
            2 if !out.is_empty() => {
                let start = rng.below(out.len());
                let end = (start + rng.below(64)).min(out.len());
                out.drain(start..end);
            }
            3 => out.truncate(rng.below(out.len() + 1)),
            _ => {
                let n = rng.below(32);
                out.extend((0..n).map(|_| rng.next() as u8));
            }
        }
    }
    out
}

/// Splits input into random slices, as a network would.
fn slices<'a>(rng: &mut Rng, input: &'a [u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    let mut rest = input;
    while !rest.is_empty() {
        let n = 1 + rng.below(rest.len().min(97));
        let (a, b) = rest.split_at(n);
        out.push(a);
        rest = b;
    }
    out
}

/// Runs `case` on generated inputs until the time budget is spent; a panic reports seed and input.
fn fuzz(name: &str, seeds: &[&[u8]], mut case: impl FnMut(&mut Rng, &[u8])) {
    let budget =
        Duration::from_secs_f64(std::env::var("FUZZ_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(2.0));
    let seed = std::env::var("FUZZ_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or(0x5EED_u64 ^ name.len() as u64);
    let mut rng = Rng(seed | 1);
    let started = Instant::now();
    let mut runs = 0u64;
    while started.elapsed() < budget {
        let input = if rng.below(4) == 0 || seeds.is_empty() {
            (0..rng.below(512)).map(|_| rng.next() as u8).collect()
        } else {
            let pick = rng.below(seeds.len());
            mutate(&mut rng, seeds[pick])
        };
        let mut case_rng = Rng(rng.next() | 1);
        let outcome = catch_unwind(AssertUnwindSafe(|| case(&mut case_rng, &input)));
        if outcome.is_err() {
            panic!("{name}: panic after {runs} runs (FUZZ_SEED={seed}); input: {:?}", String::from_utf8_lossy(&input));
        }
        runs += 1;
    }
    eprintln!("{name}: {runs} inputs in {:?}, no panic", started.elapsed());
}

const TEXT_STREAM: &[u8] = include_bytes!("../fixtures/anthropic/text_stream.sse");
const TOOL_STREAM: &[u8] = include_bytes!("../fixtures/anthropic/tool_stream.sse");
const OPENAI_STREAM: &[u8] = b"data: {\"id\":\"c\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\",\"tool_calls\":[{\"index\":0,\"id\":\"t\",\"function\":{\"name\":\"f\",\"arguments\":\"{}\"}}]},\"finish_reason\":null}]}\n\ndata: {\"choices\":[{\"index\":0,\"delta\":{},\"finish_reason\":\"stop\"}],\"usage\":{\"prompt_tokens\":1}}\n\ndata: [DONE]\n\n";
const CHAT_REQUEST: &[u8] = include_bytes!("../fixtures/anthropic/chat_request.json");
const GEMINI_STREAM: &[u8] = include_bytes!("../fixtures/gemini/tool_stream.sse");
const GEMINI_REQUEST: &[u8] = include_bytes!("../fixtures/gemini/chat_request.json");
const GEMINI_RESPONSE: &[u8] = include_bytes!("../fixtures/gemini/tool_response.json");
const OLLAMA_STREAM: &[u8] = include_bytes!("../fixtures/ollama/tool_stream.ndjson");
const OLLAMA_RESPONSE: &[u8] = include_bytes!("../fixtures/ollama/chat_response.json");
const TOOL_RESPONSE: &[u8] = include_bytes!("../fixtures/anthropic/tool_response.json");

#[test]
fn sse_parser_never_panics() {
    fuzz("ndjson", &[OLLAMA_STREAM], |rng, input| {
        let mut parser = gateway_core::ndjson::NdjsonParser::default();
        for slice in slices(rng, input) {
            let _ = parser.push(slice);
        }
        let _ = parser.finish();
    });
    fuzz("sse", &[TEXT_STREAM, OPENAI_STREAM], |rng, input| {
        let mut parser = SseParser::new();
        for slice in slices(rng, input) {
            let _ = parser.push(slice);
        }
        let _ = parser.finish();
    });
}

#[test]
fn stream_translators_never_panic() {
    for kind in [ProviderType::Openai, ProviderType::Anthropic, ProviderType::Gemini, ProviderType::Ollama] {
        let provider = chat_provider(kind).unwrap();
        let seeds = [TEXT_STREAM, TOOL_STREAM, OPENAI_STREAM, GEMINI_STREAM, OLLAMA_STREAM];
        fuzz(&format!("{kind:?} stream"), &seeds, |rng, input| {
            let mut translator = provider.chat_stream(ResponseContext {
                created: 0,
                model: String::new(),
                fallback_id: String::new(),
                base64_embeddings: false,
                custom: None,
            });
            for slice in slices(rng, input) {
                let _ = translator.push(slice);
            }
            let _ = translator.finish();
        });
    }
}

#[test]
fn response_and_error_translators_never_panic() {
    for kind in [ProviderType::Openai, ProviderType::Anthropic, ProviderType::Gemini, ProviderType::Ollama] {
        let provider = chat_provider(kind).unwrap();
        fuzz(
            &format!("{kind:?} response"),
            &[TOOL_RESPONSE, GEMINI_RESPONSE, OLLAMA_RESPONSE, br#"{"error":{"message":"x","code":5}}"#],
            |_, input| {
                let _ = provider.chat_response(
                    input,
                    &ResponseContext {
                        created: 0,
                        model: String::new(),
                        fallback_id: String::new(),
                        base64_embeddings: false,
                        custom: None,
                    },
                );
                let _ = provider.error("p", http::StatusCode::TOO_MANY_REQUESTS, input);
            },
        );
    }
}

const RESPONSES_REQUEST: &[u8] = include_bytes!("../fixtures/responses/request.json");
const CHAT_STREAM: &[u8] = include_bytes!("../fixtures/responses/chat_stream.sse");

#[test]
fn responses_translators_never_panic() {
    fuzz("responses request", &[RESPONSES_REQUEST], |_, input| {
        if let Ok(serde_json::Value::Object(body)) = serde_json::from_slice(input) {
            let _ = responses::to_chat(&body);
        }
    });
    let request: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(RESPONSES_REQUEST).unwrap();
    fuzz("responses stream", &[CHAT_STREAM, OPENAI_STREAM], |rng, input| {
        let mut translator = responses::ResponsesStream::new(responses::Envelope::new(&request, "resp_f".into(), 0));
        for slice in slices(rng, input) {
            let _ = translator.push(slice);
        }
        let _ = translator.finish();
        if let Ok(completion) = serde_json::from_slice(input) {
            let _ = responses::from_completion(&completion, &responses::Envelope::new(&request, "resp_f".into(), 0));
        }
    });
}

#[test]
fn multipart_scanner_never_panics() {
    let seed = b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a\"\r\n\r\nID3\r\n--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nopenai/whisper-1\r\n--b--\r\n";
    fuzz("multipart", &[seed], |rng, input| {
        let mut scanner = gateway_core::multipart::FieldScanner::new("b", "model");
        let mut seen = 0;
        for slice in slices(rng, input) {
            seen += slice.len();
            if let gateway_core::multipart::Scan::Found(range) = scanner.scan(&input[..seen]) {
                let _ = gateway_core::multipart::with_field(&input[..seen], "b", "model", Some(range), "m");
                break;
            }
        }
        let _ = gateway_core::multipart::boundary(&String::from_utf8_lossy(input));
    });
}

#[test]
fn mcp_messages_and_era_conversions_never_panic() {
    let seeds: [&[u8]; 3] = [
        br#"{"jsonrpc":"2.0","id":1,"method":"tools/call","params":{"name":"a","_meta":{"io.modelcontextprotocol/protocolVersion":"2026-07-28"}}}"#,
        br#"{"jsonrpc":"2.0","id":1,"result":{"tools":[{"name":"a"}],"resultType":"complete","ttlMs":5,"_meta":{}}}"#,
        br#"{"jsonrpc":"2.0","method":"notifications/progress","params":[]}"#,
    ];
    fuzz("mcp messages", &seeds, |_, input| targets::mcp_message(input));
}

#[test]
fn config_parser_never_panics() {
    let example = include_bytes!("../../config/examples/production.json");
    fuzz("config", &[example], |_, input| {
        let _ = Config::from_json(input);
    });
}

#[test]
fn the_pipeline_answers_every_request_body_without_panicking() {
    let key = "sk-fuzz";
    let config = serde_json::json!({
        "version": 1,
        "providers": {
            "openai": {"type": "openai", "base_url": "http://up.test/v1"},
            "anthropic": {"type": "anthropic", "base_url": "http://up.test/anthropic"},
            "gemini": {"type": "gemini", "base_url": "http://up.test/gemini"},
            "demo": {"type": "echo"}
        },
        "mcp_servers": {"m": {"url": "http://up.test/mcp", "tools": ["*"]},
                        "legacy": {"url": "http://up.test/mcp", "tools": ["*"], "protocol": "legacy"}},
        "keys": [{"sha256": hash_key(key), "principal": {"kind": "user", "id": "f"}}],
        "retry": {"attempts": 1}
    })
    .to_string();
    let openai_request = br#"{"model":"openai/gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}],"tools":[{"type":"function","function":{"name":"f"}}]}"#;
    let echo_request = br#"{"model":"demo/x","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":[{"type":"text","text":"a b"}]}]}"#;
    let seeds = [CHAT_REQUEST, GEMINI_REQUEST, openai_request, echo_request, RESPONSES_REQUEST];
    fuzz("pipeline", &seeds, |rng, input| {
        let host = Rc::new(FakeHost::with_config(&config));
        let upstream = [TEXT_STREAM, OPENAI_STREAM, GEMINI_STREAM][rng.below(3)];
        host.answer(FakeAnswer::Stream {
            chunks: vec![Bytes::from(mutate(rng, upstream))],
            then_error: rng.below(2) == 0,
        });
        let path =
            ["/v1/responses", "/v1/chat/completions", "/v1/chat/completions", "/mcp/m/", "/mcp/legacy"][rng.below(5)];
        let request = http::Request::post(path)
            .header("authorization", format!("Bearer {key}"))
            .body(Body::Full(Bytes::copy_from_slice(input)))
            .unwrap();
        futures::executor::block_on(async {
            use futures::StreamExt;
            let response = gateway_core::handle(Rc::clone(&host), &ConfigCache::default(), request).await;
            assert!(!response.status().is_server_error() || response.status() == 502, "{}", response.status());
            if let Body::Stream(mut s) = response.into_body() {
                while s.next().await.is_some() {}
            }
            for work in host.take_deferred() {
                work.await;
            }
        });
    });
}
