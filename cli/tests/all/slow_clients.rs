//! Slow and idle clients against a server with short connection timeouts:
//! silent sockets, half-sent heads, an HTTP/2 preface alone, idle
//! keep-alive, a body trickling at one byte a second, a client that never
//! reads its response, and the connection limit. Raw sockets on loopback
//! only; every wait is bounded.

use crate::support::{Server, assert_error, rss_kib};
use flint_test_artifacts as artifacts;
use serde_json::{Value, json};
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpSocket, TcpStream};

/// The server's connection timeouts in these tests (header, idle, body
/// grace, write), short so the suite stays fast.
const SHORT: &str = "1s";

/// Generous bound for anything the server must do "after a timeout": the
/// point is that it happens, not how fast.
const BOUND: Duration = Duration::from_secs(15);

/// A server whose connection timeouts are [`SHORT`] unless `overrides`
/// (flag, value) say otherwise.
fn short_timeouts(dir: &Path, overrides: &[(&str, &str)]) -> Server {
    let mut flags = vec![
        ("--header-timeout", SHORT),
        ("--idle-timeout", SHORT),
        ("--body-grace", SHORT),
        ("--write-timeout", SHORT),
    ];
    for (flag, value) in overrides {
        match flags.iter_mut().find(|(f, _)| f == flag) {
            Some(set) => set.1 = value,
            None => flags.push((flag, value)),
        }
    }
    let args: Vec<&str> = flags.iter().flat_map(|(f, v)| [*f, *v]).collect();
    Server::start_with(dir, &args)
}

/// The server's `host:port`.
fn addr(server: &Server) -> String {
    server.url.trim_start_matches("http://").to_string()
}

async fn connect(server: &Server) -> TcpStream {
    TcpStream::connect(addr(server)).await.unwrap()
}

/// Reads until the server closes the connection (end of stream or a
/// reset); returns what it sent. Fails if it is still open after [`BOUND`].
async fn until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut received = Vec::new();
    let read = tokio::time::timeout(BOUND, async {
        let mut buf = [0u8; 64 << 10];
        loop {
            match stream.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&buf[..n]),
            }
        }
    })
    .await;
    assert!(
        read.is_ok(),
        "the server kept the connection open for {BOUND:?}; it sent {} bytes",
        received.len()
    );
    received
}

/// One HTTP/1.1 response read off a kept-alive connection: status and
/// body (by `content-length`).
async fn response(reader: &mut BufReader<TcpStream>) -> (u16, Vec<u8>) {
    let mut status_line = String::new();
    reader.read_line(&mut status_line).await.unwrap();
    let status = status_line
        .split_whitespace()
        .nth(1)
        .unwrap_or_else(|| panic!("not a status line: {status_line:?}"))
        .parse()
        .unwrap();
    let mut length = 0;
    loop {
        let mut line = String::new();
        reader.read_line(&mut line).await.unwrap();
        if line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.split_once(':')
            && name.eq_ignore_ascii_case("content-length")
        {
            length = value.trim().parse().unwrap();
        }
    }
    let mut body = vec![0; length];
    reader.read_exact(&mut body).await.unwrap();
    (status, body)
}

/// A GET of `/healthz` on a raw connection.
const HEALTHZ: &[u8] = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n";

/// Open file descriptors of the server process.
fn open_fds(server: &Server) -> usize {
    std::fs::read_dir(format!("/proc/{}/fd", server.pid()))
        .unwrap()
        .count()
}

/// Polls `check` until it holds, for at most [`BOUND`].
async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + BOUND;
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn idle_sockets_are_closed_and_their_descriptors_freed() {
    const SOCKETS: usize = 300;
    let dir = tempfile::tempdir().unwrap();
    // Time enough to count the sockets before they are closed.
    let server = short_timeouts(dir.path(), &[("--header-timeout", "3s")]);
    assert_eq!(server.get("/healthz").await.0, 200);
    // reqwest keeps its connection; the server's idle timeout closes it.
    let baseline = open_fds(&server);
    let rss_before = rss_kib(server.pid());

    let mut sockets = Vec::new();
    for _ in 0..SOCKETS {
        sockets.push(connect(&server).await);
    }
    // The health check's kept-alive connection, counted in the baseline,
    // may reach its idle timeout meanwhile.
    eventually("the server to accept every socket", || {
        open_fds(&server) + 1 >= baseline + SOCKETS
    })
    .await;
    // The README's figure: what the server holds per idle connection.
    let held = rss_kib(server.pid()).saturating_sub(rss_before);
    println!(
        "{SOCKETS} idle connections: server RSS +{held} KiB, {:.1} KiB each",
        held as f64 / SOCKETS as f64
    );
    // Health answers while the silent sockets are held.
    let started = Instant::now();
    let (status, _) = server.get("/healthz").await;
    assert_eq!(status, 200);
    assert!(started.elapsed() < BOUND, "{:?}", started.elapsed());

    let closed = futures::future::join_all(sockets.iter_mut().map(until_closed)).await;
    assert!(
        closed.iter().all(Vec::is_empty),
        "a silent socket was sent something"
    );
    eventually("the server's descriptors to return to the baseline", || {
        open_fds(&server) <= baseline
    })
    .await;
    assert_eq!(server.get("/healthz").await.0, 200);
}

#[tokio::test]
async fn half_a_head_an_http2_preface_alone_and_idle_keep_alive_are_closed() {
    let dir = tempfile::tempdir().unwrap();
    let server = short_timeouts(dir.path(), &[]);

    let mut partial = connect(&server).await;
    partial
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .await
        .unwrap();
    let sent = until_closed(&mut partial).await;
    assert!(
        !String::from_utf8_lossy(&sent).starts_with("HTTP/1.1 200"),
        "half a head was answered: {}",
        String::from_utf8_lossy(&sent)
    );

    // The server answers the preface with its SETTINGS (and a GOAWAY when
    // it closes), never with a response.
    let mut preface = connect(&server).await;
    preface
        .write_all(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
        .await
        .unwrap();
    until_closed(&mut preface).await;

    // A kept-alive connection is served, then closed once idle.
    let mut kept = BufReader::new(connect(&server).await);
    kept.get_mut().write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut kept).await.0, 200);
    kept.get_mut().write_all(HEALTHZ).await.unwrap();
    assert_eq!(response(&mut kept).await.0, 200);
    assert!(until_closed(kept.get_mut()).await.is_empty());

    assert_eq!(server.get("/healthz").await.0, 200);
}

/// Sends `head` and then the body one byte a second until the server stops
/// taking it; returns what the server answered.
async fn trickle(server: &Server, head: String) -> Vec<u8> {
    let stream = connect(server).await;
    let (mut reader, mut writer) = stream.into_split();
    writer.write_all(head.as_bytes()).await.unwrap();
    let sender = tokio::spawn(async move {
        for _ in 0..60 {
            if writer.write_all(b"x").await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut answer = Vec::new();
    let read = tokio::time::timeout(BOUND, reader.read_to_end(&mut answer)).await;
    sender.abort();
    assert!(
        read.is_ok(),
        "no answer to a trickling body within {BOUND:?}: {}",
        String::from_utf8_lossy(&answer)
    );
    answer
}

/// The status and JSON body of a whole HTTP/1.1 response.
fn parse(answer: &[u8]) -> (reqwest::StatusCode, String) {
    let text = String::from_utf8_lossy(answer);
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("not an HTTP response: {text}"));
    let status: u16 = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    assert!(
        head.to_ascii_lowercase().contains("connection: close"),
        "{head}"
    );
    (
        reqwest::StatusCode::from_u16(status).unwrap(),
        body.to_string(),
    )
}

#[tokio::test]
async fn a_body_at_one_byte_a_second_gets_408_and_the_next_request_is_served() {
    let dir = tempfile::tempdir().unwrap();
    let server = short_timeouts(dir.path(), &[]);
    server.deploy("probe", artifacts::PROBE).await;

    let head = "POST /fn/probe/body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000\r\n\r\n";
    let (status, body) = parse(&trickle(&server, head.to_string()).await);
    let message = assert_error(status, &body, 408, "request_timeout");
    assert!(message.contains("--body-min-rate"), "{message}");
    assert_eq!(server.get("/fn/probe/counter").await.0, 200);

    // An upload to the admin API, read whole by the server, is cut off the
    // same way.
    let head = "PUT /v1/functions/slow HTTP/1.1\r\nHost: 127.0.0.1\r\n\
                Content-Type: application/wasm\r\nContent-Length: 100000\r\n\r\n";
    let (status, body) = parse(&trickle(&server, head.to_string()).await);
    assert_error(status, &body, 408, "request_timeout");
    let (status, _) = server.get_json("/v1/functions/slow").await;
    assert_eq!(status, 404);
    assert_eq!(server.get("/fn/probe/counter").await.0, 200);
}

/// A server with `probe`, one call at a time, whose time limit is longer
/// than every wait of a test: only the write timeout can end its call.
async fn probe_only_the_write_timeout_ends(dir: &tempfile::TempDir) -> Server {
    let server = short_timeouts(dir.path(), &[]);
    server.deploy("probe", artifacts::PROBE).await;
    server
        .configure(
            "probe",
            json!({"max_concurrency": 1, "timeout_ms": 600_000}),
        )
        .await;
    server
}

#[tokio::test]
async fn a_response_nobody_reads_is_cut_off_and_frees_the_instance() {
    const BODY: usize = 12 << 20;
    let dir = tempfile::tempdir().unwrap();
    let server = probe_only_the_write_timeout_ends(&dir).await;

    // A small receive window, so the echo cannot vanish into buffers.
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket
        .connect(addr(&server).parse().unwrap())
        .await
        .unwrap();
    let head = format!(
        "POST /fn/probe/body HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {BODY}\r\n\r\n"
    );
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(&vec![b'x'; BODY]).await.unwrap();

    server
        .wait_for_info("probe", "the call to run", |info: &Value| {
            info["stats"]["in_flight"] == 1
        })
        .await;
    server
        .wait_for_info("probe", "the unread call to end", |info: &Value| {
            info["stats"]["in_flight"] == 0
        })
        .await;
    let received = until_closed(&mut stream).await;
    assert!(
        received.len() < BODY,
        "the whole response arrived ({} bytes): the connection was not cut",
        received.len()
    );
    assert_eq!(server.get("/fn/probe/counter").await.0, 200);
}

#[tokio::test]
async fn an_http2_response_the_client_grants_no_window_is_cut_off() {
    const BODY: usize = 12 << 20;
    let dir = tempfile::tempdir().unwrap();
    let server = probe_only_the_write_timeout_ends(&dir).await;

    // The client reads the head and never the body: its flow-control
    // window fills and hyper stops sending, though no write blocks.
    let http2 = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let response = http2
        .post(server.at("/fn/probe/body"))
        .body(vec![b'x'; BODY])
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), reqwest::Version::HTTP_2);
    server
        .wait_for_info("probe", "the unread call to end", |info: &Value| {
            info["stats"]["in_flight"] == 0
        })
        .await;
    let body = tokio::time::timeout(BOUND, response.bytes())
        .await
        .expect("the cut-off body ends");
    assert!(
        body.is_err(),
        "the whole body arrived: the stream was not cut"
    );
    assert_eq!(server.get("/fn/probe/counter").await.0, 200);
}

#[tokio::test]
async fn at_the_connection_limit_accepting_waits_and_open_connections_keep_working() {
    const LIMIT: usize = 8;
    let dir = tempfile::tempdir().unwrap();
    // Long enough that no connection here is closed for idling.
    let server = short_timeouts(
        dir.path(),
        &[
            ("--max-connections", "8"),
            ("--header-timeout", "60s"),
            ("--idle-timeout", "60s"),
        ],
    );
    let mut open = Vec::new();
    for _ in 0..LIMIT {
        let mut connection = BufReader::new(connect(&server).await);
        connection.get_mut().write_all(HEALTHZ).await.unwrap();
        assert_eq!(response(&mut connection).await.0, 200);
        open.push(connection);
    }

    // The ninth connects (the kernel's backlog takes it) but is not served.
    let mut ninth = BufReader::new(connect(&server).await);
    ninth.get_mut().write_all(HEALTHZ).await.unwrap();
    let waiting = tokio::time::timeout(Duration::from_secs(1), response(&mut ninth)).await;
    assert!(
        waiting.is_err(),
        "a ninth connection was served at a limit of 8"
    );

    for connection in &mut open {
        connection.get_mut().write_all(HEALTHZ).await.unwrap();
        assert_eq!(response(connection).await.0, 200);
    }

    // One closes: the ninth is accepted and answered.
    drop(open.remove(0));
    let (status, _) = tokio::time::timeout(BOUND, response(&mut ninth))
        .await
        .expect("the ninth connection was served once a slot was free");
    assert_eq!(status, 200);

    for connection in &mut open {
        connection.get_mut().write_all(HEALTHZ).await.unwrap();
        assert_eq!(response(connection).await.0, 200);
    }
    drop(open);
    drop(ninth);
    assert_eq!(server.get("/healthz").await.0, 200);
}
