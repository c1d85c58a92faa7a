//! What the rate-limit, cache and admin pipeline tests share: one request through
//! `gateway_core::handle`, its response read whole (a stream to its end, so the request's
//! recording is released), and the work deferred past responses run as `waitUntil` would.
#![allow(dead_code)] // each test crate uses its own part

use std::rc::Rc;

use bytes::Bytes;
use futures::executor::block_on;
use futures::StreamExt;
use gateway_core::host::Body;
use gateway_core::testing::FakeHost;
use gateway_core::ConfigCache;
use serde_json::Value;

/// A response, read whole.
pub struct Reply {
    pub status: u16,
    pub headers: http::HeaderMap,
    pub body: String,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {}", self.body))
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }

    pub fn error(&self) -> Value {
        self.json()["error"].clone()
    }

    pub fn error_message(&self) -> String {
        self.json()["error"]["message"].as_str().unwrap().to_owned()
    }

    pub fn cache(&self) -> Option<&str> {
        self.header("x-gateway-cache")
    }

    /// The text of a whole answer.
    pub fn content(&self) -> String {
        self.json()["choices"][0]["message"]["content"].as_str().unwrap().to_owned()
    }

    /// The `data:` payloads of an SSE body.
    pub fn events(&self) -> Vec<&str> {
        self.body.split("\n\n").filter_map(|e| e.strip_prefix("data: ")).collect()
    }

    /// The text of a streamed answer, its content deltas put back together.
    pub fn streamed_content(&self) -> String {
        self.events()
            .iter()
            .filter_map(|e| serde_json::from_str::<Value>(e).ok())
            .filter_map(|c| c["choices"][0]["delta"]["content"].as_str().map(str::to_owned))
            .collect()
    }
}

/// One request through the gateway, on an instance whose configuration cache is `cache`.
pub fn request(
    host: &Rc<FakeHost>,
    cache: &ConfigCache,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Reply {
    let mut request = http::Request::builder().method(method).uri(path);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let request = request.body(Body::Full(Bytes::from(body.to_owned()))).unwrap();
    block_on(async {
        let response = gateway_core::handle(Rc::clone(host), cache, request).await;
        let (parts, body) = response.into_parts();
        let body = match body {
            Body::Full(b) => b.to_vec(),
            Body::Stream(mut s) => {
                let mut out = Vec::new();
                while let Some(chunk) = s.next().await {
                    out.extend_from_slice(&chunk.unwrap());
                }
                out
            }
        };
        Reply { status: parts.status.as_u16(), headers: parts.headers, body: String::from_utf8(body).unwrap() }
    })
}

/// A chat completion posted with a gateway key (and extra headers), on a fresh instance.
pub fn post_chat(host: &Rc<FakeHost>, key: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let authorization = format!("Bearer {key}");
    let mut all = vec![("authorization", authorization.as_str())];
    all.extend_from_slice(headers);
    request(host, &ConfigCache::default(), "POST", "/v1/chat/completions", &all, body)
}

/// Runs the work deferred past the responses, as `waitUntil` would (settlements, refunds, cache
/// entries stored, traces), until none is left.
pub fn run_deferred(host: &FakeHost) {
    loop {
        let work = host.take_deferred();
        if work.is_empty() {
            return;
        }
        for task in work {
            block_on(task);
        }
    }
}

pub fn upstream_calls(host: &FakeHost) -> usize {
    host.requests.borrow().len()
}
