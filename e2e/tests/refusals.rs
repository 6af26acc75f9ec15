//! Refused upgrades that a browser can read: with the `relay.v1` subprotocol offered, every
//! refusal is a 101 that selects it and a close with the error's close code (4001, 4003,
//! 4400, 4008) and message, and no other frame; without it, the HTTP JSON errors as before.

use relay_e2e::*;
use std::time::Duration;
use tokio::time::Instant;

/// One refusal case: the upgrade's room path segment, query and headers (besides the
/// subprotocols), and what it must be refused with.
struct Case {
    what: &'static str,
    segment: String,
    query: String,
    origin: Option<&'static str>,
    /// A token offered as `bearer.<jwt>` in `Sec-WebSocket-Protocol`.
    bearer: Option<String>,
    status: u16,
    code: &'static str,
    close_code: u16,
}

impl Case {
    fn headers(&self, offer_relay_v1: bool) -> Vec<(&'static str, String)> {
        let mut headers = Vec::new();
        if let Some(origin) = self.origin {
            headers.push(("Origin", origin.to_string()));
        }
        let mut protocols = Vec::new();
        if offer_relay_v1 {
            protocols.push("relay.v1".to_string());
        }
        if let Some(token) = &self.bearer {
            protocols.push(format!("bearer.{token}"));
        }
        if !protocols.is_empty() {
            headers.push(("Sec-WebSocket-Protocol", protocols.join(", ")));
        }
        headers
    }

    async fn connect(&self, offer_relay_v1: bool) -> Result<Client, ConnectError> {
        let headers = self.headers(offer_relay_v1);
        let headers: Vec<(&str, &str)> = headers.iter().map(|(n, v)| (*n, v.as_str())).collect();
        Client::connect_with_headers(&self.segment, &self.query, &headers).await
    }

    /// Without `relay.v1`: the HTTP error, whose message is returned.
    async fn refused_over_http(&self) -> String {
        let err = match self.connect(false).await {
            Ok(_) => panic!("{}: accepted without the subprotocol", self.what),
            Err(err) => err,
        };
        err.assert_error(self.status, self.code, self.what).await;
        let ConnectError::Http {
            url,
            request_headers,
            ..
        } = &err
        else {
            unreachable!("assert_error checked an HTTP refusal");
        };
        let again = http::replay_upgrade(url, request_headers).await;
        again.json()["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{}: no message in {:?}", self.what, again.body))
            .to_string()
    }
}

/// With `relay.v1` offered: the 101 that selects it, then only a close; its code and reason.
async fn refused_on_socket(mut client: Client, what: &str) -> (u16, String) {
    assert_eq!(
        client.selected_protocol().as_deref(),
        Some("relay.v1"),
        "{what}: the refusal's 101 must select relay.v1"
    );
    let (frames, code, reason) = client.drain_until_close(DEFAULT_TIMEOUT).await;
    assert!(
        frames.is_empty(),
        "{what}: frames before the close: {frames:?}"
    );
    let code = code.unwrap_or_else(|| panic!("{what}: closed without a code ({reason})"));
    (code, reason)
}

fn cases() -> Vec<Case> {
    let room = unique_room("e2e:refusal");
    let segment = encode_segment(&room);
    let user = User::new("refused", "Refused", "x");
    let granted = user.token(&[room.as_str()]);
    let query_token = format!("token={}", encode_query(&granted));
    let base = |what, status, code, close_code| Case {
        what,
        segment: segment.clone(),
        query: String::new(),
        origin: None,
        bearer: None,
        status,
        code,
        close_code,
    };
    vec![
        Case {
            ..base("no token", 401, "unauthorized", 4001)
        },
        Case {
            bearer: Some(BadToken::Expired.mint(&user.id, &["*"])),
            ..base("an expired token", 401, "unauthorized", 4001)
        },
        Case {
            query: format!(
                "token={}",
                encode_query(&BadToken::WrongSecret.mint(&user.id, &["*"]))
            ),
            ..base("a token with a wrong signature", 401, "unauthorized", 4001)
        },
        Case {
            bearer: Some(user.token(&["e2e:refusal-other"])),
            ..base("a room the token does not grant", 403, "forbidden", 4003)
        },
        Case {
            origin: Some("https://evil.example"),
            bearer: Some(granted.clone()),
            ..base("a foreign origin", 403, "forbidden", 4003)
        },
        Case {
            segment: "a%20b".to_string(),
            bearer: Some(user.token(&["*"])),
            ..base("a bad room name", 400, "bad_request", 4400)
        },
        Case {
            query: format!("since=abc&{query_token}"),
            ..base("a bad since", 400, "bad_request", 4400)
        },
        Case {
            query: format!("batch=maybe&{query_token}"),
            ..base("a bad batch flag", 400, "bad_request", 4400)
        },
    ]
}

#[tokio::test]
async fn refusals_are_closes_when_relay_v1_is_offered_and_http_errors_otherwise() {
    for case in cases() {
        let message = case.refused_over_http().await;
        let client = case.connect(true).await.unwrap_or_else(|e| {
            panic!(
                "{}: with relay.v1 offered the upgrade must succeed, got {e:?}",
                case.what
            )
        });
        let (code, reason) = refused_on_socket(client, case.what).await;
        assert_eq!(code, case.close_code, "{}: close code", case.what);
        assert_eq!(
            reason, message,
            "{}: the reason is the HTTP error's message",
            case.what
        );
    }
}

#[tokio::test]
async fn the_origin_refusal_reads_origin_not_allowed() {
    let case = cases()
        .into_iter()
        .find(|case| case.origin.is_some())
        .expect("an origin case");
    let client = case.connect(true).await.expect("a 101");
    let (code, reason) = refused_on_socket(client, case.what).await;
    assert_eq!((code, reason.as_str()), (4003, "origin not allowed"));
}

#[tokio::test]
async fn the_rooms_connect_limit_is_a_4008_close_with_relay_v1_and_a_429_without() {
    const CONNECT_BURST: usize = 30;
    let room = unique_room("e2e:refusal-rate");
    let user = User::new("looper", "Looper", "x");
    let offered = format!("relay.v1, bearer.{}", user.token(&[room.as_str()]));
    let segment = encode_segment(&room);
    let started = Instant::now();
    let mut opened = 0;
    let mut refusal = None;
    for _ in 0..CONNECT_BURST * 3 {
        let mut c = Client::connect_with_headers(
            &segment,
            "",
            &[("Sec-WebSocket-Protocol", offered.as_str())],
        )
        .await
        .unwrap_or_else(|e| panic!("with relay.v1 every upgrade is a 101, got {e:?}"));
        match c.next_incoming(Instant::now() + DEFAULT_TIMEOUT).await {
            Some(Incoming::Json(welcome)) => {
                assert_eq!(ty(&welcome), "welcome");
                opened += 1;
                c.abort();
            }
            Some(Incoming::Closed { code, reason }) => {
                refusal = Some((code, reason, c.backlog().len()));
                break;
            }
            None => panic!("neither a welcome nor a close within {DEFAULT_TIMEOUT:?}"),
        }
    }
    let refill = (started.elapsed().as_secs_f64() * 5.0).ceil() as usize;
    let (code, reason, frames) = refusal.unwrap_or_else(|| {
        panic!(
            "{opened} connections in {:?}, none refused",
            started.elapsed()
        )
    });
    assert_eq!(code, Some(4008), "{reason}");
    assert_eq!(reason, "too many connection attempts");
    assert_eq!(frames, 0, "no frame before the close");
    assert!(
        (CONNECT_BURST..=CONNECT_BURST + refill + 1).contains(&opened),
        "{opened} connections before the refusal (burst {CONNECT_BURST}, ~{refill} refilled)"
    );
    // The same limit without the subprotocol: the HTTP 429 (a refilled token may let one
    // attempt through first).
    let token = user.token(&[room.as_str()]);
    for _ in 0..10 {
        match Client::connect(&room, Some(&token), Via::Bearer, None).await {
            Ok(c) => c.abort(),
            Err(err) => {
                err.assert_error(429, "rate_limited", "connect limit without relay.v1")
                    .await;
                return;
            }
        }
    }
    panic!("10 more connects right after the limit were all accepted");
}

#[tokio::test]
async fn refusals_by_the_worker_alone_do_not_count_against_the_rooms_connect_limit() {
    let room = unique_room("e2e:refusal-alone");
    let user = User::new("alone", "Alone", "x");
    let offered = format!("relay.v1, bearer.{}", user.token(&[room.as_str()]));
    let segment = encode_segment(&room);
    // More refused attempts than the room's connect burst (30): had they reached the room,
    // the connect below would be refused with 4008.
    for _ in 0..40 {
        let c = Client::connect_with_headers(
            &segment,
            "since=abc",
            &[("Sec-WebSocket-Protocol", offered.as_str())],
        )
        .await
        .expect("a 101");
        let (code, _) = refused_on_socket(c, "bad since").await;
        assert_eq!(code, 4400);
    }
    let mut c = Client::connect_with_headers(
        &segment,
        "",
        &[("Sec-WebSocket-Protocol", offered.as_str())],
    )
    .await
    .expect("a 101");
    let welcome = c.recv_json_within(Duration::from_secs(5)).await;
    assert_welcome(&welcome, &room, &user);
}
