//! A minimal blocking HTTP/1.1 client over one loopback connection per
//! request (`Connection: close`): enough to deploy, configure and time a
//! first response, with nothing between the clock and the socket.

use anyhow::{Context, bail};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

/// A response: status and (de-chunked) body.
#[derive(Debug)]
pub struct Response {
    /// The status code.
    pub status: u16,
    /// The body.
    pub body: Vec<u8>,
}

/// Sends one request and reads the whole response.
pub fn request(
    addr: SocketAddr,
    method: &str,
    path: &str,
    content_type: Option<&str>,
    body: &[u8],
    timeout: Duration,
) -> anyhow::Result<Response> {
    let mut stream = TcpStream::connect_timeout(&addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.set_write_timeout(Some(timeout))?;
    stream.set_nodelay(true)?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    if let Some(content_type) = content_type {
        head.push_str(&format!("Content-Type: {content_type}\r\n"));
    }
    head.push_str("\r\n");
    stream.write_all(head.as_bytes())?;
    stream.write_all(body)?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw)?;
    parse(&raw)
}

/// Polls `GET path` until it answers 200, and returns the time from `since`
/// to the end of that response. Connection errors (not listening yet) and
/// other statuses are retried until `timeout` has passed since `since`.
pub fn first_ok(
    addr: SocketAddr,
    path: &str,
    since: Instant,
    timeout: Duration,
) -> anyhow::Result<Duration> {
    let deadline = since + timeout;
    let mut last = String::new();
    while Instant::now() < deadline {
        match request(addr, "GET", path, None, b"", Duration::from_secs(10)) {
            Ok(response) if response.status == 200 => return Ok(since.elapsed()),
            Ok(response) => {
                last = format!(
                    "status {}: {}",
                    response.status,
                    String::from_utf8_lossy(&response.body)
                )
            }
            Err(e) => last = format!("{e:#}"),
        }
        // Polling, not waiting for readiness: a short pause bounds the cost
        // of a retry to the measurement's resolution.
        std::thread::sleep(Duration::from_millis(1));
    }
    bail!("GET http://{addr}{path} did not answer 200 within {timeout:?}; last: {last}")
}

fn parse(raw: &[u8]) -> anyhow::Result<Response> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .context("response without a header end")?;
    let head = std::str::from_utf8(&raw[..split]).context("response head is not UTF-8")?;
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    let chunked = head.lines().any(|line| {
        let lower = line.to_ascii_lowercase();
        lower.starts_with("transfer-encoding:") && lower.contains("chunked")
    });
    let body = &raw[split + 4..];
    let body = if chunked {
        dechunk(body)?
    } else {
        body.to_vec()
    };
    Ok(Response { status, body })
}

fn dechunk(mut data: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let line_end = data
            .windows(2)
            .position(|w| w == b"\r\n")
            .context("truncated chunk size")?;
        let size_text = std::str::from_utf8(&data[..line_end])?;
        let size_text = size_text.split(';').next().unwrap_or("").trim();
        let size = usize::from_str_radix(size_text, 16)
            .with_context(|| format!("bad chunk size {size_text:?}"))?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        if data.len() < size + 2 {
            bail!("truncated chunk");
        }
        body.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_plain_and_chunked_responses() {
        let plain = b"HTTP/1.1 201 Created\r\nContent-Length: 2\r\n\r\nok";
        let r = parse(plain).unwrap();
        assert_eq!((r.status, &r.body[..]), (201, &b"ok"[..]));
        let chunked =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nHello\r\n3;x=y\r\n!!\n\r\n0\r\n\r\n";
        let r = parse(chunked).unwrap();
        assert_eq!((r.status, &r.body[..]), (200, &b"Hello!!\n"[..]));
        assert!(parse(b"HTTP/1.1 200 OK\r\n").is_err());
    }
}
