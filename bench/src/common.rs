//! What every scenario shares: the target (loopback only), the clock, tokens, WebSocket
//! connections, frame parsing, the server's memory and the output of a run.

use crate::CommonArgs;
use futures_util::StreamExt as _;
use jwt_compact::alg::{Hs256, Hs256Key};
use jwt_compact::{AlgorithmExt as _, Claims, Header};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::OnceLock;
use std::time::Duration;
use tokio::net::TcpStream;
use tokio::time::Instant;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

pub type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
pub type Res<T> = Result<T, String>;

// ---- the target ---------------------------------------------------------------------------

/// Checks that `raw` is an `http://` URL whose host is a loopback address (127.0.0.0/8,
/// `localhost` or `[::1]`) and returns `(http base, ws base)` without a trailing slash.
pub fn loopback_bases(raw: &str) -> Res<(String, String)> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("--url {raw:?}: {e}"))?;
    if url.scheme() != "http" {
        return Err(format!(
            "--url {raw:?}: only http:// is supported (loopback targets)"
        ));
    }
    let host = url
        .host_str()
        .ok_or_else(|| format!("--url {raw:?}: no host"))?;
    let loopback = host.eq_ignore_ascii_case("localhost")
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<IpAddr>()
            .map(|ip| ip.is_loopback())
            .unwrap_or(false);
    if !loopback {
        return Err(format!(
            "--url {raw:?}: refusing a non-loopback host {host:?} (only 127.0.0.0/8, localhost and [::1])"
        ));
    }
    if url.path() != "/" || url.query().is_some() {
        return Err(format!(
            "--url {raw:?}: give the base URL only (no path or query)"
        ));
    }
    let port = url.port_or_known_default().unwrap_or(80);
    Ok((
        format!("http://{host}:{port}"),
        format!("ws://{host}:{port}"),
    ))
}

/// What [`Ctx::case_label`] appends for runs with `--batch`; the report compares such a case
/// with the baseline's run of the same case without it.
pub const BATCHED_SUFFIX: &str = " batch=1";

/// A run's context: where the relay is, how to sign tokens, the run's deadline.
pub struct Ctx {
    pub http_base: String,
    pub ws_base: String,
    pub target: String,
    secret: Vec<u8>,
    /// The run's wall-time bound.
    pub deadline: Instant,
    pub timeout: Duration,
    pub connect_timeout: Duration,
    pub http: reqwest::Client,
    /// A random tag that keeps this run's rooms, users and cids apart from earlier runs.
    pub run_id: String,
    /// Whether connections ask for batched delivery.
    pub batch: bool,
}

impl Ctx {
    pub fn new(a: &CommonArgs) -> Res<Ctx> {
        let (http_base, ws_base) = loopback_bases(&a.url)?;
        if !(a.timeout > 0.0 && a.timeout <= 3600.0) {
            return Err("--timeout must be in (0, 3600] seconds".into());
        }
        if !(a.connect_timeout > 0.0 && a.connect_timeout <= 600.0) {
            return Err("--connect-timeout must be in (0, 600] seconds".into());
        }
        if a.jwt_secret.is_empty() {
            return Err("--jwt-secret (or JWT_SECRET) is empty".into());
        }
        let timeout = Duration::from_secs_f64(a.timeout);
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(256)
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| format!("HTTP client: {e}"))?;
        now_us(); // starts the clock
        Ok(Ctx {
            http_base,
            ws_base,
            target: a.target.clone(),
            secret: a.jwt_secret.as_bytes().to_vec(),
            deadline: Instant::now() + timeout,
            timeout,
            connect_timeout: Duration::from_secs_f64(a.connect_timeout),
            http,
            run_id: format!("{:08x}", fastrand::u32(..)),
            batch: a.batch,
        })
    }

    /// A context that lives for the rest of the process (tasks borrow it).
    pub fn leak(a: &CommonArgs) -> Res<&'static Ctx> {
        Ok(Box::leak(Box::new(Ctx::new(a)?)))
    }

    /// An HS256 user token for `sub` granting every room (`rooms: ["*"]`), valid for the
    /// run's timeout plus an hour.
    pub fn token(&self, sub: &str) -> String {
        #[derive(Serialize)]
        struct UserClaims<'a> {
            sub: &'a str,
            rooms: [&'static str; 1],
        }
        let now = chrono::Utc::now();
        let mut claims = Claims::new(UserClaims { sub, rooms: ["*"] });
        claims.issued_at = Some(now);
        claims.expiration =
            Some(now + chrono::Duration::seconds(self.timeout.as_secs() as i64 + 3600));
        Hs256
            .token(
                &Header::empty().with_token_type("JWT"),
                &claims,
                &Hs256Key::new(&self.secret),
            )
            .expect("minting an HS256 token")
    }

    /// `ws://host/v1/rooms/{room}/ws?token=…`.
    pub fn ws_url(&self, room: &str, token: &str) -> String {
        format!(
            "{}/v1/rooms/{}/ws?token={}{}",
            self.ws_base,
            encode_segment(room),
            encode_query(token),
            if self.batch { "&batch=1" } else { "" }
        )
    }

    /// A scenario's case label, marked when connections use batched delivery.
    pub fn case_label(&self, case: String) -> String {
        if self.batch {
            format!("{case}{BATCHED_SUFFIX}")
        } else {
            case
        }
    }

    /// `http://host/v1/rooms/{room}/{tail}`.
    pub fn room_url(&self, room: &str, tail: &str) -> String {
        format!(
            "{}/v1/rooms/{}/{tail}",
            self.http_base,
            encode_segment(room)
        )
    }

    pub fn timed_out(&self) -> bool {
        Instant::now() >= self.deadline
    }
}

/// Percent-encodes a path segment (a room name); unreserved characters and `:` stay.
pub fn encode_segment(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const SEGMENT: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~')
        .remove(b':');
    utf8_percent_encode(s, SEGMENT).to_string()
}

/// Percent-encodes a query value (JWTs are URL-safe already; this is for safety).
pub fn encode_query(s: &str) -> String {
    use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
    const QUERY: &AsciiSet = &NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'.')
        .remove(b'_')
        .remove(b'~');
    utf8_percent_encode(s, QUERY).to_string()
}

// ---- the clock ----------------------------------------------------------------------------

static EPOCH: OnceLock<std::time::Instant> = OnceLock::new();

/// Microseconds on a monotonic clock private to this process. Sender and receivers are in the
/// same process, so the `t` stamped into a message and the receipt time share the clock.
pub fn now_us() -> u64 {
    EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_micros() as u64
}

// ---- WebSocket connections ----------------------------------------------------------------

/// Small buffers: thousands of connections are held at once, and frames are small.
fn ws_config() -> WebSocketConfig {
    WebSocketConfig::default()
        .read_buffer_size(16 * 1024)
        .write_buffer_size(0)
}

/// Opens a WebSocket to `room` and waits for the `welcome` frame. Returns the socket and the
/// welcome's `seq` (the room's last seq), or a short failure reason (used as a bucket in
/// the failure counts: `http 503`, `timeout`, `io ConnectionRefused`, …).
pub async fn open(ctx: &Ctx, room: &str, token: &str) -> Result<(Ws, u64), String> {
    let (ws, welcome) = open_welcomed(ctx, room, token).await?;
    let seq = serde_json::from_str::<Frame>(&welcome)
        .ok()
        .and_then(|f| f.seq)
        .unwrap_or(0);
    Ok((ws, seq))
}

/// [`open`], returning the `welcome` frame's text instead of its `seq` (a storm counts its
/// bytes: in a room with presence lists it grows with the room).
pub async fn open_welcomed(ctx: &Ctx, room: &str, token: &str) -> Result<(Ws, String), String> {
    let url = ctx.ws_url(room, token);
    let fut = async {
        let (mut ws, _resp) =
            tokio_tungstenite::connect_async_with_config(url.as_str(), Some(ws_config()), true)
                .await
                .map_err(|e| classify(&e))?;
        loop {
            match ws.next().await {
                Some(Ok(Message::Text(t))) => {
                    return match serde_json::from_str::<Frame>(t.as_str()) {
                        Ok(f) if f.ty == "welcome" => Ok((ws, t.as_str().to_string())),
                        Ok(f) => Err(format!("first frame {}", f.ty)),
                        Err(_) => Err("first frame not JSON".to_string()),
                    };
                }
                Some(Ok(Message::Close(c))) => {
                    return Err(format!(
                        "closed before welcome ({})",
                        c.map(|c| u16::from(c.code)).unwrap_or(1005)
                    ))
                }
                Some(Ok(_)) => continue,
                Some(Err(e)) => return Err(classify(&e)),
                None => return Err("eof before welcome".to_string()),
            }
        }
    };
    match tokio::time::timeout(ctx.connect_timeout, fut).await {
        Ok(r) => r,
        Err(_) => Err("timeout".to_string()),
    }
}

/// A short, stable failure bucket for a WebSocket error.
pub fn classify(e: &WsError) -> String {
    match e {
        WsError::Http(resp) => format!("http {}", resp.status().as_u16()),
        WsError::Io(io) => format!("io {:?}", io.kind()),
        WsError::ConnectionClosed | WsError::AlreadyClosed => "closed".to_string(),
        WsError::Protocol(p) => format!("protocol: {p}"),
        other => {
            let s = other.to_string();
            s.chars().take(60).collect()
        }
    }
}

/// Why a socket's stream ended, from what it just yielded, or `None` while it goes on: a close
/// frame with its code, an error's bucket, or the end of the stream.
pub fn end_reason(msg: &Option<Result<Message, WsError>>) -> Option<String> {
    match msg {
        Some(Ok(Message::Close(c))) => Some(format!(
            "closed {}",
            c.as_ref().map(|c| u16::from(c.code)).unwrap_or(1005)
        )),
        Some(Err(e)) => Some(classify(e)),
        None => Some("eof".into()),
        Some(Ok(_)) => None,
    }
}

/// Sends a close frame and waits (bounded) for the server's close, reading whatever
/// arrives meanwhile.
pub async fn close_ws(mut ws: Ws, within: Duration) {
    let _ = tokio::time::timeout(within, async {
        if ws.close(None).await.is_err() {
            return;
        }
        while let Some(Ok(_)) = ws.next().await {}
    })
    .await;
}

/// Resolves once `stop` is true (or its sender is gone); holds no guard across awaits.
pub async fn stopped(stop: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = stop.wait_for(|s| *s).await;
}

// ---- frames -------------------------------------------------------------------------------

/// The fields of a server frame the tool looks at; everything else is skipped unparsed.
#[derive(Deserialize)]
pub struct Frame<'a> {
    #[serde(rename = "type", borrow)]
    pub ty: Cow<'a, str>,
    #[serde(default)]
    pub seq: Option<u64>,
    #[serde(default, borrow)]
    pub data: Option<&'a RawValue>,
    #[serde(default, borrow)]
    pub cid: Option<Cow<'a, str>>,
    #[serde(default, borrow)]
    pub code: Option<Cow<'a, str>>,
}

/// The frames of one WebSocket message: the message itself, or the elements of a batch (a JSON
/// array of frames, sent to connections that opted in with `batch=1`).
pub fn frame_texts(text: &str) -> Vec<&str> {
    if !text.trim_start().starts_with('[') {
        return vec![text];
    }
    serde_json::from_str::<Vec<&RawValue>>(text)
        .map(|frames| frames.into_iter().map(RawValue::get).collect())
        .unwrap_or_else(|_| vec![text])
}

/// The payload the tool publishes: send time (µs on [`now_us`]'s clock) and index.
#[derive(Deserialize)]
pub struct Stamp {
    pub t: u64,
    pub i: u64,
}

impl Frame<'_> {
    pub fn stamp(&self) -> Option<Stamp> {
        self.data.and_then(|d| serde_json::from_str(d.get()).ok())
    }
}

/// The publish frame for message `i` with cid `{prefix}{i}`.
pub fn publish_frame(prefix: &str, i: u64, t: u64) -> String {
    format!(r#"{{"type":"publish","cid":"{prefix}{i}","data":{{"t":{t},"i":{i}}}}}"#)
}

/// Counts per reason (failures, error codes).
#[derive(Default, Debug, Clone)]
pub struct Counts(pub BTreeMap<String, u64>);

impl Counts {
    pub fn add(&mut self, key: &str) {
        *self.0.entry(key.to_string()).or_insert(0) += 1;
    }
    pub fn merge(&mut self, other: &Counts) {
        for (k, v) in &other.0 {
            *self.0.entry(k.clone()).or_insert(0) += v;
        }
    }
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
    pub fn to_json(&self) -> Value {
        Value::Object(self.0.iter().map(|(k, v)| (k.clone(), json!(v))).collect())
    }
}

/// Awaits the connection attempts of a run's setup, in order: the sockets that opened, with
/// `setup_s` (since `setup_start`), `connected` and `connect_failures` (by reason) put in
/// `results`. Fails only when a task itself failed.
pub async fn gather_opens<T>(
    opens: Vec<tokio::task::JoinHandle<Result<T, String>>>,
    setup_start: Instant,
    results: &mut Map<String, Value>,
) -> Result<Vec<T>, String> {
    let mut failures = Counts::default();
    let mut opened = Vec::with_capacity(opens.len());
    for o in opens {
        match o.await.map_err(|e| format!("connect task: {e}"))? {
            Ok(socket) => opened.push(socket),
            Err(reason) => failures.add(&reason),
        }
    }
    results.insert(
        "setup_s".into(),
        json!(r3(setup_start.elapsed().as_secs_f64())),
    );
    results.insert("connected".into(), json!(opened.len()));
    results.insert("connect_failures".into(), failures.to_json());
    Ok(opened)
}

// ---- the server's memory -----------------------------------------------------------------

/// VmRSS (KiB) of `pid` and of each of its descendants: `(pid, command name, KiB)`, the
/// process itself first. `None` when `pid` does not exist.
pub fn tree_rss(pid: u32) -> Option<Vec<(u32, String, u64)>> {
    let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
    for entry in std::fs::read_dir("/proc").ok()?.flatten() {
        let Some(p) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{p}/stat")) else {
            continue;
        };
        // "pid (comm) state ppid …"; comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
            children.entry(ppid).or_default().push(p);
        }
    }
    let comm = |p: u32| {
        std::fs::read_to_string(format!("/proc/{p}/comm"))
            .map(|c| c.trim().to_string())
            .unwrap_or_default()
    };
    let mut out = vec![(pid, comm(pid), proc_rss(pid)?)];
    let mut stack = children.get(&pid).cloned().unwrap_or_default();
    while let Some(p) = stack.pop() {
        if let Some(r) = proc_rss(p) {
            out.push((p, comm(p), r));
        }
        if let Some(c) = children.get(&p) {
            stack.extend(c);
        }
    }
    Some(out)
}

/// Sum of VmRSS (KiB) over `pid` and all its descendants, and how many processes that is.
pub fn tree_rss_kib(pid: u32) -> Option<(u64, usize)> {
    tree_rss(pid).map(|v| (v.iter().map(|p| p.2).sum(), v.len()))
}

/// `{"<comm> <pid>": MiB}` for the processes of [`tree_rss`] above 1 MiB.
pub fn tree_rss_json(pid: u32) -> Value {
    match tree_rss(pid) {
        Some(v) => Value::Object(
            v.into_iter()
                .filter(|p| p.2 >= 1024)
                .map(|(p, c, k)| (format!("{c} {p}"), json!(r3(k as f64 / 1024.0))))
                .collect(),
        ),
        None => Value::Null,
    }
}

fn proc_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    // Kernel threads and zombies have no VmRSS line: they count as 0.
    Some(
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap_or(0),
    )
}

// ---- output -------------------------------------------------------------------------------

/// One run's outcome: printed as a table on stderr and one JSON line on stdout.
pub struct RunOutput {
    pub scenario: &'static str,
    pub target: String,
    pub params: Map<String, Value>,
    pub results: Map<String, Value>,
}

impl RunOutput {
    pub fn print(&self) {
        let mut table = format!("== {} ({})\n", self.scenario, self.target);
        for (k, v) in &self.params {
            table.push_str(&format!("   {k:<24} {}\n", show(v)));
        }
        table.push_str("   --\n");
        for (k, v) in &self.results {
            table.push_str(&format!("   {k:<24} {}\n", show(v)));
        }
        eprint!("{table}");
        let line = json!({
            "scenario": self.scenario,
            "target": self.target,
            "params": self.params,
            "results": self.results,
        });
        println!("{line}");
    }
}

fn show(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// The machine's one-minute load average: the load tool and the server share the machine with
/// whatever else runs, which moves every latency figure.
pub fn load_average_1m() -> Option<f64> {
    std::fs::read_to_string("/proc/loadavg")
        .ok()?
        .split_whitespace()
        .next()?
        .parse()
        .ok()
}

/// Rounds to 3 decimals for the output.
pub fn r3(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}

/// Bounded-concurrency helper: a semaphore sized for connects.
pub fn semaphore(n: usize) -> std::sync::Arc<tokio::sync::Semaphore> {
    std::sync::Arc::new(tokio::sync::Semaphore::new(n.max(1)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn end_reasons_name_the_close_code_or_the_end() {
        use tokio_tungstenite::tungstenite::protocol::{frame::coding::CloseCode, CloseFrame};
        let close = Message::Close(Some(CloseFrame {
            code: CloseCode::from(4008),
            reason: "rate limit abuse".into(),
        }));
        assert_eq!(end_reason(&Some(Ok(close))).as_deref(), Some("closed 4008"));
        assert_eq!(
            end_reason(&Some(Ok(Message::Close(None)))).as_deref(),
            Some("closed 1005")
        );
        assert_eq!(end_reason(&None).as_deref(), Some("eof"));
        let closed = Some(Err(WsError::ConnectionClosed));
        assert_eq!(end_reason(&closed).as_deref(), Some("closed"));
        assert_eq!(end_reason(&Some(Ok(Message::text("{}")))), None);
    }

    #[test]
    fn only_loopback_urls() {
        assert!(loopback_bases("http://127.0.0.1:8787").is_ok());
        assert!(loopback_bases("http://127.3.2.1:1/").is_ok());
        assert!(loopback_bases("http://localhost:8787").is_ok());
        assert!(loopback_bases("http://[::1]:8787").is_ok());
        assert_eq!(
            loopback_bases("http://[::1]:8787").unwrap().1,
            "ws://[::1]:8787"
        );
        for bad in [
            "http://10.0.0.1:8787",
            "http://192.168.1.2",
            "http://example.com",
            "http://128.0.0.1",
            "https://127.0.0.1",
            "http://127.0.0.1:8787/v1",
            "http://localhost.example.com",
            "http://[::2]:1",
        ] {
            assert!(loopback_bases(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn frames_parse_without_the_unknown_fields() {
        let t = r#"{"type":"message","room":"r","seq":7,"id":"x","event":"message","data":{"t":12,"i":3},"from":{"id":"a"},"cid":"c3","ts":"z"}"#;
        let f: Frame = serde_json::from_str(t).unwrap();
        assert_eq!(f.ty, "message");
        assert_eq!(f.seq, Some(7));
        let s = f.stamp().unwrap();
        assert_eq!((s.t, s.i), (12, 3));
        let w: Frame = serde_json::from_str(r#"{"type":"welcome","seq":0,"presence":[]}"#).unwrap();
        assert!(w.stamp().is_none());
        let odd: Frame =
            serde_json::from_str(r#"{"type":"message","seq":1,"data":"text"}"#).unwrap();
        assert!(odd.stamp().is_none());
        assert_eq!(
            publish_frame("b-", 5, 99),
            r#"{"type":"publish","cid":"b-5","data":{"t":99,"i":5}}"#
        );
    }

    #[test]
    fn rss_of_this_process() {
        let (kib, n) = tree_rss_kib(std::process::id()).unwrap();
        assert!(kib > 0 && n >= 1);
    }
}
