//! The relay's signatures in tests: computed for backend requests ([`hmac_hex`]), and checked
//! by a plain HTTP/1.1 endpoint on 127.0.0.1 for the relay's own signed calls (outgoing events,
//! the before-publish hook): one request per connection, handed to the test with whether its
//! `X-Relay-Signature` (`t=<unix>,v1=<hex HMAC-SHA256 of "t.body">`) verifies, and answered as
//! the test says.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::Duration;

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How old a signature may be.
const MAX_SIGNATURE_AGE_SECS: i64 = 300;

/// What the relay sent.
pub struct SignedRequest {
    pub body: Vec<u8>,
    /// The signature verified with the secret, within 5 minutes.
    pub signed: bool,
}

/// What the endpoint answers, after `delay` (to answer later than the relay waits).
pub struct Answer {
    pub status: u16,
    /// JSON, or empty.
    pub body: String,
    pub delay: Duration,
}

impl Answer {
    pub fn status(status: u16) -> Answer {
        Answer {
            status,
            body: String::new(),
            delay: Duration::ZERO,
        }
    }

    pub fn json(body: String) -> Answer {
        Answer {
            body,
            ..Answer::status(200)
        }
    }
}

/// Listens on the loopback address of `url` (`http://127.0.0.1:PORT/...`, the value the relay
/// was started with) and answers each request with `handle`, on a thread of its own; bodies
/// beyond `max_body_bytes` are cut there.
pub fn serve(
    url: &str,
    secret: String,
    max_body_bytes: usize,
    handle: fn(SignedRequest) -> Answer,
) {
    let address = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split('/').next())
        .unwrap_or_else(|| panic!("{url:?} must be http://127.0.0.1:PORT/..."));
    assert!(
        address.starts_with("127.0.0.1:"),
        "the endpoint listens on loopback only"
    );
    let listener = TcpListener::bind(address).expect("the endpoint's port is free");
    std::thread::spawn(move || {
        for stream in listener.incoming().flatten() {
            let secret = secret.clone();
            std::thread::spawn(move || answer(stream, &secret, max_body_bytes, handle));
        }
    });
}

/// Reads one request, answers it, closes.
fn answer(
    mut stream: TcpStream,
    secret: &str,
    max_body_bytes: usize,
    handle: fn(SignedRequest) -> Answer,
) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    let mut reader = BufReader::new(stream.try_clone().expect("stream clones"));
    let mut signature = None;
    let mut length = 0usize;
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 {
            return;
        }
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((name, value)) = line.split_once(':') {
            match name.trim().to_ascii_lowercase().as_str() {
                "x-relay-signature" => signature = Some(value.trim().to_string()),
                "content-length" => length = value.trim().parse().unwrap_or(0),
                _ => {}
            }
        }
    }
    let mut body = vec![0; length.min(max_body_bytes)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let signed = signature_valid(&body, signature.as_deref(), secret);
    let answer = handle(SignedRequest { body, signed });
    std::thread::sleep(answer.delay);
    let _ = write!(
        stream,
        "HTTP/1.1 {} X\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{}",
        answer.status,
        answer.body.len(),
        answer.body
    );
}

/// Whether `header` signs `body` with `secret`, made within the last 5 minutes.
pub fn signature_valid(body: &[u8], header: Option<&str>, secret: &str) -> bool {
    let Some(header) = header else {
        return false;
    };
    let mut t = None;
    let mut v1 = None;
    for part in header.split(',') {
        match part.split_once('=') {
            Some(("t", value)) => t = value.parse::<i64>().ok(),
            Some(("v1", value)) => v1 = Some(value.to_string()),
            _ => {}
        }
    }
    let (Some(t), Some(v1)) = (t, v1) else {
        return false;
    };
    if (chrono::Utc::now().timestamp() - t).abs() > MAX_SIGNATURE_AGE_SECS {
        return false;
    }
    let hex = hmac_hex(secret.as_bytes(), &[t.to_string().as_bytes(), body]);
    hex == v1
}

/// The hex HMAC-SHA256 under `key` of `parts` joined with `.`: the relay's signature schemes
/// (`v1` over `t.body`, `v2` over `t.method.path.body`).
pub fn hmac_hex(key: &[u8], parts: &[&[u8]]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).expect("any key length is fine for HMAC");
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            mac.update(b".");
        }
        mac.update(part);
    }
    mac.finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
