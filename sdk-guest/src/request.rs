use std::fmt;

use serde::de::DeserializeOwned;

use crate::Error;

/// An HTTP request method.
///
/// The common methods have their own variants; anything else is kept verbatim
/// in [`Method::Other`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Method {
    /// `GET`
    Get,
    /// `HEAD`
    Head,
    /// `POST`
    Post,
    /// `PUT`
    Put,
    /// `DELETE`
    Delete,
    /// `CONNECT`
    Connect,
    /// `OPTIONS`
    Options,
    /// `TRACE`
    Trace,
    /// `PATCH`
    Patch,
    /// Any other method, as the client spelled it.
    Other(String),
}

impl Method {
    /// The method as it appears on the wire, e.g. `"GET"`.
    pub fn as_str(&self) -> &str {
        match self {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Connect => "CONNECT",
            Method::Options => "OPTIONS",
            Method::Trace => "TRACE",
            Method::Patch => "PATCH",
            Method::Other(other) => other,
        }
    }
}

impl fmt::Display for Method {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An incoming HTTP request, with its whole body already read.
///
/// Inside a function, [`export!`](crate::export) builds it from the
/// `wasi:http` request. [`Request::new`] and the `with_*` methods build one by
/// hand, for unit tests of a handler that run natively with `cargo test`.
#[derive(Debug, Clone)]
pub struct Request {
    method: Method,
    path_with_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    /// A request with no headers and an empty body.
    ///
    /// `path_with_query` is the request target, e.g. `/items?limit=10`.
    pub fn new(method: Method, path_with_query: impl Into<String>) -> Self {
        Request {
            method,
            path_with_query: path_with_query.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// Adds a header (names are stored in lowercase).
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let mut name = name.into();
        name.make_ascii_lowercase();
        self.headers.push((name, value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The request method.
    pub fn method(&self) -> &Method {
        &self.method
    }

    /// The path, without the query, exactly as received (not percent-decoded),
    /// e.g. `/items`.
    pub fn path(&self) -> &str {
        match self.path_with_query.split_once('?') {
            Some((path, _)) => path,
            None => &self.path_with_query,
        }
    }

    /// The raw query string after `?`, without the `?`; `None` when the
    /// request target has no `?`.
    pub fn query(&self) -> Option<&str> {
        self.path_with_query.split_once('?').map(|(_, query)| query)
    }

    /// The path and query as received, e.g. `/items?limit=10`.
    pub fn path_with_query(&self) -> &str {
        &self.path_with_query
    }

    /// The percent-decoded value of the first query parameter called `name`.
    ///
    /// `+` decodes to a space and `%XX` to the byte it names; a `%` not
    /// followed by two hex digits is kept as it is, and bytes that do not form
    /// UTF-8 become U+FFFD. A parameter without `=` has the empty value.
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query_params()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value)
    }

    /// Every query parameter, percent-decoded as in [`Request::query_param`],
    /// in the order they appear.
    pub fn query_params(&self) -> impl Iterator<Item = (String, String)> + '_ {
        self.query()
            .unwrap_or("")
            .split('&')
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
                (percent_decode(key), percent_decode(value))
            })
    }

    /// The first value of the header `name` (matched case-insensitively).
    ///
    /// Header values that are not valid UTF-8 appear with U+FFFD in place of
    /// the bad bytes.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.header_all(name).next()
    }

    /// Every value of the header `name` (matched case-insensitively), in the
    /// order received.
    pub fn header_all<'a>(&'a self, name: &str) -> impl Iterator<Item = &'a str> {
        self.headers
            .iter()
            .filter(move |(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every header as `(name, value)`, names in lowercase, in the order
    /// received; a header sent several times appears several times.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The request body (empty when there is none, and for a `GET` or `HEAD`
    /// without `Content-Length`: the SDK does not read theirs).
    pub fn body(&self) -> &[u8] {
        &self.body
    }

    /// Takes the body out of the request, leaving it empty.
    pub fn take_body(&mut self) -> Vec<u8> {
        std::mem::take(&mut self.body)
    }

    /// The body as UTF-8 text.
    pub fn text(&self) -> Result<&str, Error> {
        std::str::from_utf8(&self.body).map_err(Error::Utf8)
    }

    /// The body parsed as JSON into `T`.
    ///
    /// The `content-type` header is not checked.
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(Error::Json)
    }
}

/// Decodes `application/x-www-form-urlencoded` style text: `+` is a space,
/// `%XX` a byte; malformed escapes are kept literally.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' => match (
                bytes.get(i + 1).and_then(hex),
                bytes.get(i + 2).and_then(hex),
            ) {
                (Some(high), Some(low)) => {
                    out.push(high << 4 | low);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    match String::from_utf8(out) {
        Ok(text) => text,
        Err(err) => String::from_utf8_lossy(err.as_bytes()).into_owned(),
    }
}

fn hex(digit: &u8) -> Option<u8> {
    (*digit as char).to_digit(16).map(|value| value as u8)
}

/// Converts the `wasi:http` method into ours.
pub(crate) fn method_from_wasi(method: wasi::http::types::Method) -> Method {
    use wasi::http::types::Method as M;
    match method {
        M::Get => Method::Get,
        M::Head => Method::Head,
        M::Post => Method::Post,
        M::Put => Method::Put,
        M::Delete => Method::Delete,
        M::Connect => Method::Connect,
        M::Options => Method::Options,
        M::Trace => Method::Trace,
        M::Patch => Method::Patch,
        M::Other(other) => Method::Other(other),
    }
}

/// Builds a request from parts already read from the host.
pub(crate) fn from_parts(
    method: Method,
    path_with_query: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
) -> Request {
    Request {
        method,
        path_with_query,
        headers,
        body,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_and_query_split_at_the_first_question_mark() {
        let req = Request::new(Method::Get, "/a/b?x=1&y=2?z");
        assert_eq!(req.path(), "/a/b");
        assert_eq!(req.query(), Some("x=1&y=2?z"));
        assert_eq!(req.query_param("y").as_deref(), Some("2?z"));

        let bare = Request::new(Method::Get, "/a");
        assert_eq!(bare.path(), "/a");
        assert_eq!(bare.query(), None);
        assert_eq!(bare.query_param("x"), None);
    }

    #[test]
    fn query_params_are_percent_decoded() {
        let req = Request::new(
            Method::Get,
            "/?msg=hello+w%C3%B6rld%21&flag&bad=100%&odd=%zz&a%20b=c&empty=",
        );
        assert_eq!(req.query_param("msg").as_deref(), Some("hello wörld!"));
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("bad").as_deref(), Some("100%"));
        assert_eq!(req.query_param("odd").as_deref(), Some("%zz"));
        assert_eq!(req.query_param("a b").as_deref(), Some("c"));
        assert_eq!(req.query_param("empty").as_deref(), Some(""));
        assert_eq!(req.query_param("missing"), None);
    }

    #[test]
    fn invalid_utf8_in_query_becomes_replacement_character() {
        let req = Request::new(Method::Get, "/?v=%FFok");
        assert_eq!(req.query_param("v").as_deref(), Some("\u{FFFD}ok"));
    }

    #[test]
    fn headers_match_case_insensitively() {
        let req = Request::new(Method::Post, "/")
            .with_header("Content-Type", "application/json")
            .with_header("x-multi", "1")
            .with_header("X-Multi", "2");
        assert_eq!(req.header("content-type"), Some("application/json"));
        assert_eq!(req.header("CONTENT-TYPE"), Some("application/json"));
        assert_eq!(req.header_all("x-multi").collect::<Vec<_>>(), ["1", "2"]);
        assert_eq!(
            req.headers().next(),
            Some(("content-type", "application/json"))
        );
        assert_eq!(req.header("missing"), None);
    }

    #[test]
    fn body_as_text_and_json() {
        let req = Request::new(Method::Post, "/").with_body(r#"{"n":3}"#);
        assert_eq!(req.text().unwrap(), r#"{"n":3}"#);
        let value: serde_json::Value = req.json().unwrap();
        assert_eq!(value["n"], 3);

        let bad = Request::new(Method::Post, "/").with_body(vec![0xff, b'{']);
        assert!(matches!(bad.text(), Err(Error::Utf8(_))));
        let err = bad.json::<serde_json::Value>().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("request body is not valid JSON")
        );
    }
}
