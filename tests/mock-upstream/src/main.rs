//! A fast OpenAI-shaped upstream for benchmarks: HTTP/1.1 keep-alive, a thread per connection,
//! std only. Every POST gets the same small chat completion, or, when its body asks for
//! `"stream":true`, the same answer as a chunked SSE stream (first chunk at once, then 10 ms
//! apart). Prints `READY http://ADDR`.
//!
//! Usage: mock-upstream [--port N]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};

const COMPLETION: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"message":{"role":"assistant","content":"Hello from the benchmark upstream."},"finish_reason":"stop"}],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#;

fn serve(stream: TcpStream) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut writer = stream;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let mut content_length = 0usize;
        let mut chunked = false;
        let mut close = false;
        loop {
            let mut header = String::new();
            if reader.read_line(&mut header)? == 0 {
                return Ok(());
            }
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                let value = value.trim();
                if name.eq_ignore_ascii_case("content-length") {
                    content_length = value.parse().unwrap_or(0);
                } else if name.eq_ignore_ascii_case("transfer-encoding") && value.eq_ignore_ascii_case("chunked") {
                    chunked = true;
                } else if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
                    close = true;
                }
            }
        }
        let mut body = Vec::new();
        if chunked {
            skip_chunked_body(&mut reader)?;
        } else {
            body = vec![0; content_length];
            reader.read_exact(&mut body)?;
        }
        let text = String::from_utf8_lossy(&body);
        if text.contains("\"stream\":true") || text.contains("\"stream\": true") {
            write_stream(&mut writer)?;
            if close {
                return Ok(());
            }
            continue;
        }
        let response = format!(
            "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n{}\r\n{COMPLETION}",
            COMPLETION.len(),
            if close { "connection: close\r\n" } else { "" }
        );
        writer.write_all(response.as_bytes())?;
        if close {
            return Ok(());
        }
    }
}

const STREAM_CHUNKS: [&str; 4] = [
    r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"role":"assistant","content":"Hello"},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" from the"},"finish_reason":null}]}"#,
    r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[{"index":0,"delta":{"content":" benchmark upstream."},"finish_reason":"stop"}]}"#,
    r#"{"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"gpt-4o","choices":[],"usage":{"prompt_tokens":9,"completion_tokens":6,"total_tokens":15}}"#,
];

/// A chunked SSE response: the first event at once, the rest 10 ms apart, then `[DONE]`.
fn write_stream(writer: &mut TcpStream) -> std::io::Result<()> {
    writer.write_all(b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n")?;
    let events =
        STREAM_CHUNKS.iter().map(|c| format!("data: {c}\n\n")).chain(std::iter::once("data: [DONE]\n\n".to_owned()));
    for (i, event) in events.enumerate() {
        if i > 0 {
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
        writer.write_all(format!("{:x}\r\n{event}\r\n", event.len()).as_bytes())?;
        writer.flush()?;
    }
    writer.write_all(b"0\r\n\r\n")
}

/// Reads past a `transfer-encoding: chunked` body (sizes in hex, a zero-size chunk, trailers).
fn skip_chunked_body(reader: &mut impl BufRead) -> std::io::Result<()> {
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size = usize::from_str_radix(size_line.trim().split(';').next().unwrap_or("0"), 16).unwrap_or(0);
        if size == 0 {
            loop {
                let mut trailer = String::new();
                if reader.read_line(&mut trailer)? == 0 || trailer.trim_end().is_empty() {
                    return Ok(());
                }
            }
        }
        let mut chunk = vec![0; size + 2]; // data and its CRLF
        reader.read_exact(&mut chunk)?;
    }
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let port = args.iter().position(|a| a == "--port").and_then(|i| args.get(i + 1)).map_or("0", String::as_str);
    let listener = TcpListener::bind(format!("127.0.0.1:{port}"))?;
    println!("READY http://{}", listener.local_addr()?);
    for stream in listener.incoming().flatten() {
        std::thread::spawn(move || serve(stream));
    }
    Ok(())
}
