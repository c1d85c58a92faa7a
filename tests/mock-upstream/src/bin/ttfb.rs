//! Time to first body byte of a streamed POST, over fresh connections (std only).
//!   ttfb URL AUTH_HEADER BODY N   ->  prints `p50_ms p99_ms`
//! The clock starts when the request is written and stops at the first byte after the response
//! head, i.e. the first streamed event (or the first chunk-size line of a chunked body).

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Instant;

fn one(host_port: &str, path: &str, auth: &str, body: &str) -> std::io::Result<f64> {
    let mut stream = TcpStream::connect(host_port)?;
    stream.set_nodelay(true)?;
    let request = format!(
        "POST {path} HTTP/1.1\r\nhost: {host_port}\r\ncontent-type: application/json\r\n{auth}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let started = Instant::now();
    stream.write_all(request.as_bytes())?;
    let mut seen = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        if stream.read(&mut byte)? == 0 {
            return Err(std::io::Error::other("closed before the body"));
        }
        seen.push(byte[0]);
        if seen.ends_with(b"\r\n\r\n") {
            break;
        }
    }
    if stream.read(&mut byte)? == 0 {
        return Err(std::io::Error::other("empty body"));
    }
    let elapsed = started.elapsed().as_secs_f64() * 1000.0;
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    Ok(elapsed)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let [_, url, auth, body, n] = args.as_slice() else {
        eprintln!("usage: ttfb URL AUTH_HEADER BODY N");
        std::process::exit(2);
    };
    let rest = url.strip_prefix("http://").unwrap_or(url);
    let (host_port, path) = rest.split_once('/').map_or((rest, "/".to_owned()), |(h, p)| (h, format!("/{p}")));
    let n: usize = n.parse().unwrap_or(200);
    let mut samples = Vec::with_capacity(n);
    for _ in 0..n {
        match one(host_port, &path, auth, body) {
            Ok(ms) => samples.push(ms),
            Err(e) => eprintln!("ttfb: {e}"),
        }
    }
    samples.sort_by(f64::total_cmp);
    let pick = |q: f64| samples.get(((samples.len() as f64 - 1.0) * q).round() as usize).copied().unwrap_or(f64::NAN);
    println!("{:.3} {:.3}", pick(0.5), pick(0.99));
}
