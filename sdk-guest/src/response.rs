use serde::Serialize;

const TEXT_PLAIN: &str = "text/plain; charset=utf-8";
const APPLICATION_JSON: &str = "application/json";

/// The HTTP response a function returns.
///
/// Start from a constructor and add to it with the builder methods:
///
/// ```
/// use flint_sdk::Response;
///
/// let res = Response::new(201)
///     .header("content-type", "text/csv")
///     .header("location", "/reports/7")
///     .body("id,total\n7,42\n");
/// assert_eq!(res.status(), 201);
/// ```
///
/// When the response is sent, a `content-length` header is added if the
/// function did not set one (and the status allows a body). If the host
/// rejects the status or a header (an invalid or forbidden name or value, for
/// example `connection`), the caller receives a `500` error response whose
/// code is `invalid_response` and whose message names the rejected part, in
/// place of the function's response.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    /// A response with the given status, no headers and an empty body.
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain; charset=utf-8` response.
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .header("content-type", TEXT_PLAIN)
            .body(body.into())
    }

    /// An `application/json` response with `value` serialised as its body.
    ///
    /// If `value` cannot be serialised (a map with non-string keys, say), the
    /// result is instead a `500` [`Response::error`] with the code
    /// `serialize_failed`.
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .header("content-type", APPLICATION_JSON)
                .body(body),
            Err(err) => Response::error(
                500,
                "serialize_failed",
                format!("could not serialise the response body as JSON: {err}"),
            ),
        }
    }

    /// A JSON error in Flint's one error shape:
    /// `{"error":{"code":"<code>","message":"<message>"}}`.
    ///
    /// `code` is a stable, machine-readable `snake_case` identifier;
    /// `message` says what went wrong for a human.
    pub fn error(status: u16, code: &str, message: impl Into<String>) -> Self {
        let body = serde_json::json!({
            "error": { "code": code, "message": message.into() }
        });
        Response::new(status)
            .header("content-type", APPLICATION_JSON)
            .body(body.to_string())
    }

    /// Sets the header `name` to `value`, replacing any value it already had
    /// (names compare case-insensitively).
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        let name = name.into();
        self.headers
            .retain(|(existing, _)| !existing.eq_ignore_ascii_case(&name));
        self.headers.push((name, value.into()));
        self
    }

    /// Adds a value for the header `name`, keeping the values it already had
    /// (for headers that may repeat, such as `set-cookie`).
    pub fn append_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The status code.
    pub fn status(&self) -> u16 {
        self.status
    }

    /// The first value of the header `name` (matched case-insensitively).
    pub fn header_value(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// Every header as `(name, value)`, in the order set.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.headers
            .iter()
            .map(|(name, value)| (name.as_str(), value.as_str()))
    }

    /// The body.
    pub fn body_bytes(&self) -> &[u8] {
        &self.body
    }

    /// Splits the response into status, headers and body.
    pub fn into_parts(self) -> (u16, Vec<(String, String)>, Vec<u8>) {
        (self.status, self.headers, self.body)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sets_content_type_and_body() {
        let res = Response::text(200, "hi\n");
        assert_eq!(res.status(), 200);
        assert_eq!(res.header_value("Content-Type"), Some(TEXT_PLAIN));
        assert_eq!(res.body_bytes(), b"hi\n");
    }

    #[test]
    fn json_serialises_the_value() {
        let res = Response::json(201, &serde_json::json!({"a": [1, 2]}));
        assert_eq!(res.status(), 201);
        assert_eq!(res.header_value("content-type"), Some(APPLICATION_JSON));
        assert_eq!(res.body_bytes(), br#"{"a":[1,2]}"#);
    }

    #[test]
    fn json_that_cannot_serialise_becomes_a_500() {
        let map: std::collections::HashMap<(u8, u8), u8> = [((1, 2), 3)].into();
        let res = Response::json(200, &map);
        assert_eq!(res.status(), 500);
        let body: serde_json::Value = serde_json::from_slice(res.body_bytes()).unwrap();
        assert_eq!(body["error"]["code"], "serialize_failed");
    }

    #[test]
    fn error_has_the_shared_shape() {
        let res = Response::error(404, "not_found", "no item \"7\"");
        assert_eq!(res.status(), 404);
        let body: serde_json::Value = serde_json::from_slice(res.body_bytes()).unwrap();
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "not_found", "message": "no item \"7\""}})
        );
    }

    #[test]
    fn header_replaces_and_append_header_adds() {
        let res = Response::text(200, "x")
            .header("Content-Type", "text/csv")
            .append_header("set-cookie", "a=1")
            .append_header("set-cookie", "b=2");
        let headers: Vec<_> = res.headers().collect();
        assert_eq!(
            headers,
            [
                ("Content-Type", "text/csv"),
                ("set-cookie", "a=1"),
                ("set-cookie", "b=2")
            ]
        );
    }
}
