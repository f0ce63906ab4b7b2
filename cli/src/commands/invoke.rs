//! `flint invoke NAME [PATH]`: calls a function over HTTP, as `curl` would, and prints the
//! response body.

use std::io::{self, IsTerminal, Write};
use std::path::PathBuf;

use anyhow::Context as _;
use clap::Args;
use reqwest::header::{HeaderMap, HeaderName, HeaderValue};
use reqwest::{Method, StatusCode, Url};
use serde_json::{Map, Value, json};
use tokio::io::AsyncReadExt;

use super::parse_function_name;
use crate::client::{ApiError, Client, ClientError};
use crate::{Context, output};

/// Flags of `flint invoke`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  flint invoke hello                              GET /fn/hello/
  flint invoke hello /users/7?verbose=1           GET with a path and a query
  flint invoke hello@3 /                          call version 3, not the latest
  flint invoke hello --data 'world'               POST a literal body
  flint invoke hello /upload --data @photo.jpg -H 'content-type: image/jpeg'
  echo '{\"a\":1}' | flint invoke hello --data - -H 'content-type: application/json'
  flint invoke hello -X DELETE /items/7 -i        show the status and headers on stderr
  flint invoke hello --json                       status, headers and body as JSON")]
pub struct InvokeArgs {
    /// Function to call; NAME@VERSION pins a version (hello@3), NAME alone takes the latest
    #[arg(value_parser = parse_function_name, value_name = "NAME[@VERSION]")]
    pub name: String,

    /// Path inside the function, with an optional query string
    #[arg(default_value = "/")]
    pub path: String,

    /// Request body: 'literal text', @FILE for a file's contents, or - for stdin
    ///
    /// No content-type is sent unless given with -H. A literal body that starts with '@'
    /// must come from a file or stdin.
    #[arg(short, long, value_name = "DATA", value_parser = parse_data)]
    pub data: Option<Data>,

    /// HTTP method [default: POST with --data, GET without]
    #[arg(short = 'X', long, value_name = "METHOD", value_parser = parse_method)]
    pub method: Option<Method>,

    /// Request header as 'name: value'; repeat for several
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    pub headers: Vec<(HeaderName, HeaderValue)>,

    /// Print the response status line and headers to stderr
    #[arg(short, long)]
    pub include: bool,
}

/// Where a request body comes from (`--data`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// The argument itself.
    Literal(String),
    /// The contents of a file (`@FILE`).
    File(PathBuf),
    /// Standard input (`-` or `@-`).
    Stdin,
}

impl Data {
    /// Reads the body.
    pub(crate) async fn read(&self) -> anyhow::Result<Vec<u8>> {
        match self {
            Self::Literal(text) => Ok(text.clone().into_bytes()),
            Self::File(path) => tokio::fs::read(path)
                .await
                .with_context(|| format!("cannot read {}", path.display())),
            Self::Stdin => {
                let mut body = Vec::new();
                tokio::io::stdin()
                    .read_to_end(&mut body)
                    .await
                    .context("cannot read the request body from stdin")?;
                Ok(body)
            }
        }
    }
}

/// Parses `--data`: `-` or `@-` for stdin, `@FILE` for a file, anything else literally.
pub fn parse_data(arg: &str) -> Result<Data, String> {
    match arg {
        "-" | "@-" => Ok(Data::Stdin),
        "@" => Err("expected a file name after '@' (as in --data @body.json)".to_owned()),
        _ => Ok(match arg.strip_prefix('@') {
            Some(path) => Data::File(PathBuf::from(path)),
            None => Data::Literal(arg.to_owned()),
        }),
    }
}

/// Parses `-X`: an HTTP method, case-insensitively (`post` is `POST`).
pub fn parse_method(arg: &str) -> Result<Method, String> {
    Method::from_bytes(arg.to_ascii_uppercase().as_bytes())
        .map_err(|_| format!("{arg:?} is not an HTTP method (try GET, POST, PUT, DELETE)"))
}

/// Parses `-H`: `name: value`, split at the first colon, spaces around the value ignored.
pub fn parse_header(arg: &str) -> Result<(HeaderName, HeaderValue), String> {
    let Some((name, value)) = arg.split_once(':') else {
        return Err(format!(
            "expected 'name: value', got {arg:?} (as in -H 'content-type: application/json')"
        ));
    };
    let name = HeaderName::from_bytes(name.trim().as_bytes())
        .map_err(|_| format!("{:?} is not a valid header name", name.trim()))?;
    let value = HeaderValue::from_str(value.trim())
        .map_err(|_| format!("the value of header {name} has characters a header cannot hold"))?;
    Ok((name, value))
}

/// The URL of `path` (which may carry a query) inside function `name`:
/// `{server}/fn/{name}{path}`, with a `/` added in front of a path that lacks one.
pub fn invoke_url(client: &Client, name: &str, path: &str) -> anyhow::Result<Url> {
    let base = client.url(&["fn", name]);
    let separator = if path.starts_with('/') { "" } else { "/" };
    let joined = format!("{base}{separator}{path}");
    Url::parse(&joined).with_context(|| format!("invalid path {path:?}"))
}

/// Runs `flint invoke`.
pub async fn run(ctx: &Context, args: InvokeArgs) -> anyhow::Result<()> {
    let url = invoke_url(&ctx.client, &args.name, &args.path)?;
    let body = match &args.data {
        Some(data) => Some(data.read().await?),
        None => None,
    };
    let method = args.method.unwrap_or(match body {
        Some(_) => Method::POST,
        None => Method::GET,
    });

    let mut request = ctx.client.request(method, url.clone());
    for (name, value) in args.headers {
        request = request.header(name, value);
    }
    if let Some(body) = body {
        request = request.body(body);
    }
    let mut response = ctx.client.send(request).await?;
    let status = response.status();
    let reading = || format!("cannot read the response from {url}");

    if args.include {
        eprint!(
            "{}",
            status_and_headers(response.version(), status, response.headers())
        );
    }
    if ctx.json {
        let headers = headers_json(response.headers());
        let body = response.bytes().await.with_context(reading)?;
        output::print_json(&response_json(status, headers, &body))?;
        return check(status, &body);
    }
    if !status.is_success() {
        let body = response.bytes().await.with_context(reading)?;
        write_stdout(&body)?;
        end_line_on_terminal(body.last().copied())?;
        return check(status, &body);
    }
    // Stream, so that a function that sends its answer bit by bit is seen as it goes.
    let mut last = None;
    while let Some(chunk) = response.chunk().await.with_context(reading)? {
        write_stdout(&chunk)?;
        last = chunk.last().copied().or(last);
    }
    end_line_on_terminal(last)?;
    Ok(())
}

fn write_stdout(bytes: &[u8]) -> io::Result<()> {
    let mut out = io::stdout().lock();
    out.write_all(bytes)?;
    out.flush()
}

/// Ends a body that lacks a final newline with one when stdout is a terminal, so that the
/// prompt or the error line does not run on after it. Piped output stays byte for byte.
fn end_line_on_terminal(last_byte: Option<u8>) -> io::Result<()> {
    if last_byte.is_some_and(|byte| byte != b'\n') && io::stdout().is_terminal() {
        write_stdout(b"\n")?;
    }
    Ok(())
}

/// Fails for a status outside 2xx, with the Flint error in the body when there is one.
fn check(status: StatusCode, body: &[u8]) -> anyhow::Result<()> {
    if status.is_success() {
        return Ok(());
    }
    Err(ClientError::Function {
        status,
        api: ApiError::from_body(status, body),
    }
    .into())
}

/// `HTTP/1.1 200 OK` and one `name: value` line per header, then an empty line (as
/// `curl -i` shows them).
fn status_and_headers(
    version: reqwest::Version,
    status: StatusCode,
    headers: &HeaderMap,
) -> String {
    let mut text = format!("{version:?} {status}\n");
    for (name, value) in headers {
        text.push_str(&format!(
            "{name}: {}\n",
            String::from_utf8_lossy(value.as_bytes())
        ));
    }
    text.push('\n');
    text
}

/// Headers as a JSON object; a header sent several times has its values joined with
/// `, `, as HTTP allows.
fn headers_json(headers: &HeaderMap) -> Map<String, Value> {
    let mut object = Map::new();
    for name in headers.keys() {
        let values: Vec<_> = headers
            .get_all(name)
            .iter()
            .map(|value| String::from_utf8_lossy(value.as_bytes()).into_owned())
            .collect();
        object.insert(name.to_string(), Value::String(values.join(", ")));
    }
    object
}

/// What `flint invoke --json` prints. The body is text when it is UTF-8 and base64
/// otherwise; `body_encoding` says which.
fn response_json(status: StatusCode, headers: Map<String, Value>, body: &[u8]) -> Value {
    let (body, encoding) = match std::str::from_utf8(body) {
        Ok(text) => (text.to_owned(), "utf8"),
        Err(_) => (output::base64(body), "base64"),
    };
    json!({
        "status": status.as_u16(),
        "headers": headers,
        "body": body,
        "body_encoding": encoding,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Cli;
    use clap::Parser;

    #[test]
    fn data_forms() {
        assert_eq!(
            parse_data("hello").unwrap(),
            Data::Literal("hello".to_owned())
        );
        assert_eq!(parse_data("").unwrap(), Data::Literal(String::new()));
        assert_eq!(parse_data("a@b").unwrap(), Data::Literal("a@b".to_owned()));
        assert_eq!(
            parse_data("@body.json").unwrap(),
            Data::File("body.json".into())
        );
        assert_eq!(
            parse_data("@dir/a b.bin").unwrap(),
            Data::File("dir/a b.bin".into())
        );
        assert_eq!(parse_data("-").unwrap(), Data::Stdin);
        assert_eq!(parse_data("@-").unwrap(), Data::Stdin);
        assert!(parse_data("@").unwrap_err().contains("file name"));
    }

    #[test]
    fn header_forms() {
        let (name, value) = parse_header("Content-Type: application/json").unwrap();
        assert_eq!(name, "content-type");
        assert_eq!(value, "application/json");

        let (name, value) = parse_header("x-empty:").unwrap();
        assert_eq!((name.as_str(), value.to_str().unwrap()), ("x-empty", ""));

        // Only the first colon separates: values may hold more.
        let (name, value) = parse_header("x-url:http://a:1/").unwrap();
        assert_eq!(
            (name.as_str(), value.to_str().unwrap()),
            ("x-url", "http://a:1/")
        );

        assert!(
            parse_header("no-colon")
                .unwrap_err()
                .contains("name: value")
        );
        assert!(parse_header(": value").unwrap_err().contains("header name"));
        assert!(
            parse_header("bad name: v")
                .unwrap_err()
                .contains("header name")
        );
        assert!(parse_header("x: a\nb").unwrap_err().contains("x"));
    }

    #[test]
    fn methods() {
        assert_eq!(parse_method("post").unwrap(), Method::POST);
        assert_eq!(parse_method("DELETE").unwrap(), Method::DELETE);
        assert_eq!(parse_method("PURGE").unwrap().as_str(), "PURGE");
        assert!(parse_method("GE T").is_err());
    }

    #[test]
    fn urls() {
        let client = Client::new("http://127.0.0.1:8080").unwrap();
        let url = |name, path| invoke_url(&client, name, path).unwrap().to_string();
        assert_eq!(url("hello", "/"), "http://127.0.0.1:8080/fn/hello/");
        assert_eq!(
            url("hello", "users/7"),
            "http://127.0.0.1:8080/fn/hello/users/7"
        );
        assert_eq!(
            url("hello@3", "/a?x=1&y=2"),
            "http://127.0.0.1:8080/fn/hello@3/a?x=1&y=2"
        );
        assert_eq!(url("hello", "?x=1"), "http://127.0.0.1:8080/fn/hello/?x=1");
        assert_eq!(url("hello", "/a b"), "http://127.0.0.1:8080/fn/hello/a%20b");
    }

    #[test]
    fn command_line() {
        let cli = Cli::try_parse_from([
            "flint", "invoke", "hello@2", "/x", "-d", "@in.json", "-X", "put", "-H", "a: 1", "-H",
            "b: 2", "-i",
        ])
        .unwrap();
        let crate::Command::Invoke(args) = cli.command else {
            panic!("not invoke");
        };
        assert_eq!(args.name, "hello@2");
        assert_eq!(args.path, "/x");
        assert_eq!(args.data, Some(Data::File("in.json".into())));
        assert_eq!(args.method, Some(Method::PUT));
        assert_eq!(args.headers.len(), 2);
        assert!(args.include);

        let cli = Cli::try_parse_from(["flint", "invoke", "hello"]).unwrap();
        let crate::Command::Invoke(args) = cli.command else {
            panic!("not invoke");
        };
        assert_eq!(args.path, "/");
        assert_eq!(args.data, None);
    }

    #[test]
    fn json_output() {
        let mut headers = HeaderMap::new();
        headers.append("set-cookie", HeaderValue::from_static("a=1"));
        headers.append("set-cookie", HeaderValue::from_static("b=2"));
        headers.insert("content-type", HeaderValue::from_static("text/plain"));
        let value = response_json(StatusCode::OK, headers_json(&headers), b"hi");
        assert_eq!(
            value,
            json!({
                "status": 200,
                "headers": {"set-cookie": "a=1, b=2", "content-type": "text/plain"},
                "body": "hi",
                "body_encoding": "utf8",
            })
        );
        let value = response_json(StatusCode::OK, Map::new(), &[0xff, 0x00]);
        assert_eq!(value["body"], "/wA=");
        assert_eq!(value["body_encoding"], "base64");
    }

    #[test]
    fn include_text() {
        let mut headers = HeaderMap::new();
        headers.insert("content-length", HeaderValue::from_static("2"));
        assert_eq!(
            status_and_headers(reqwest::Version::HTTP_11, StatusCode::NOT_FOUND, &headers),
            "HTTP/1.1 404 Not Found\ncontent-length: 2\n\n"
        );
    }

    #[test]
    fn error_statuses_fail() {
        assert!(check(StatusCode::OK, b"").is_ok());
        assert!(check(StatusCode::NO_CONTENT, b"").is_ok());
        let body = br#"{"error":{"code":"function_not_found","message":"no function nope"}}"#;
        let err = check(StatusCode::NOT_FOUND, body).unwrap_err();
        assert_eq!(
            err.to_string(),
            "function returned 404 function_not_found: no function nope"
        );
        assert_eq!(
            crate::hint(&err),
            Some("run `flint ls` to see deployed functions")
        );
    }
}
