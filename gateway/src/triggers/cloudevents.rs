//! A RabbitMQ message as a CloudEvents HTTP request (binary mode): the body
//! is the message body, `ce-*` headers carry its identity, AMQP headers
//! arrive as `x-amqp-<name>`, and the attempt number as `x-flint-attempt`.
//! A structured CloudEvent (`application/cloudevents+json`) passes as it is.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use lapin::message::Delivery;
use lapin::types::{AMQPValue, FieldTable};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Header carrying the 1-based attempt number.
pub const ATTEMPT_HEADER: &str = "x-flint-attempt";
/// Default `ce-type` of messages without a `type` property.
pub const DEFAULT_CE_TYPE: &str = "com.flint.amqp.message";

/// A header of a message as text, if it has a textual form.
pub fn header_str(table: Option<&FieldTable>, key: &str) -> Option<String> {
    table?.inner().get(key).and_then(amqp_to_string)
}

fn amqp_to_string(value: &AMQPValue) -> Option<String> {
    Some(match value {
        AMQPValue::LongString(s) => String::from_utf8_lossy(s.as_bytes()).into_owned(),
        AMQPValue::ShortString(s) => s.as_str().to_string(),
        AMQPValue::Boolean(b) => b.to_string(),
        AMQPValue::ShortShortInt(v) => v.to_string(),
        AMQPValue::ShortShortUInt(v) => v.to_string(),
        AMQPValue::ShortInt(v) => v.to_string(),
        AMQPValue::ShortUInt(v) => v.to_string(),
        AMQPValue::LongInt(v) => v.to_string(),
        AMQPValue::LongUInt(v) => v.to_string(),
        AMQPValue::LongLongInt(v) => v.to_string(),
        AMQPValue::Timestamp(v) => v.to_string(),
        _ => return None,
    })
}

fn rfc3339(timestamp: Option<u64>) -> String {
    let time = timestamp.map_or_else(SystemTime::now, |s| UNIX_EPOCH + Duration::from_secs(s));
    humantime::format_rfc3339_millis(time).to_string()
}

/// The message's attempt number (1 for a first delivery): Flint's own
/// retries count in `x-flint-attempt`, and the broker's redeliveries (after
/// a crash or a lost channel) add to it: a quorum queue counts them in
/// `x-delivery-count`, a classic one only flags a redelivery.
pub fn attempt(delivery: &Delivery) -> u32 {
    let headers = delivery.properties.headers().as_ref();
    let retried: u32 = header_str(headers, ATTEMPT_HEADER)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1);
    let redelivered = header_str(headers, "x-delivery-count")
        .and_then(|n| n.parse().ok())
        .unwrap_or(u32::from(delivery.redelivered));
    retried.saturating_add(redelivered)
}

/// The message's id, or one made from its queue and delivery tag.
pub fn message_id(delivery: &Delivery, queue: &str) -> String {
    delivery
        .properties
        .message_id()
        .as_ref()
        .map(|m| m.as_str().to_string())
        .unwrap_or_else(|| format!("amqp-{queue}-{}", delivery.delivery_tag))
}

/// Builds the request for a message from `source` (`amqp://HOST/VHOST/QUEUE`),
/// or says why the message cannot be one (a property that is no valid
/// header value, say): such a message can never succeed.
pub fn to_request(
    delivery: &Delivery,
    source: &str,
    message_id: &str,
    attempt: u32,
) -> Result<http::Request<flint_runtime::HyperIncomingBody>, String> {
    let props = &delivery.properties;
    let content_type = props
        .content_type()
        .as_ref()
        .map(|c| c.as_str().to_string());
    let mut builder = http::Request::builder()
        .method(http::Method::POST)
        .uri("http://localhost/")
        .header(ATTEMPT_HEADER, attempt.to_string());
    if let Some(ct) = &content_type {
        builder = builder.header(http::header::CONTENT_TYPE, ct.as_str());
    }
    let structured = content_type
        .as_deref()
        .is_some_and(|ct| ct.starts_with("application/cloudevents+json"));
    if !structured {
        let ce_type = props
            .kind()
            .as_ref()
            .map_or(DEFAULT_CE_TYPE.to_string(), |k| k.as_str().to_string());
        builder = builder
            .header("ce-specversion", "1.0")
            .header("ce-id", message_id)
            .header("ce-source", source)
            .header("ce-type", ce_type)
            .header("ce-time", rfc3339(*props.timestamp()));
    }
    if let Some(headers) = props.headers() {
        for (key, value) in headers.inner() {
            if key.as_str().starts_with("x-flint-") {
                continue;
            }
            let Some(value) = amqp_to_string(value) else {
                continue;
            };
            let name = format!("x-amqp-{}", key.as_str().to_ascii_lowercase());
            if let (Ok(name), Ok(value)) = (
                http::HeaderName::from_bytes(name.as_bytes()),
                http::HeaderValue::from_str(&value),
            ) {
                builder = builder.header(name, value);
            }
        }
    }
    let body = Full::new(Bytes::from(delivery.data.clone()))
        .map_err(|never| match never {})
        .boxed_unsync();
    builder
        .body(body)
        .map_err(|e| format!("the message's properties cannot be request headers: {e}"))
}

/// `amqp://HOST/VHOST` of the broker URL, without credentials or query.
pub fn source_prefix(url: &str) -> String {
    let rest = url.split_once("://").map_or(url, |(_, r)| r);
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let rest = rest.split('?').next().unwrap_or(rest);
    let (host, vhost) = rest.split_once('/').unwrap_or((rest, "%2f"));
    format!(
        "amqp://{host}/{}",
        if vhost.is_empty() { "%2f" } else { vhost }
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources_hide_credentials_and_default_the_vhost() {
        let url = "amqp://guest:secret@127.0.0.1:5672/%2f?heartbeat=10";
        assert_eq!(source_prefix(url), "amqp://127.0.0.1:5672/%2f");
        assert_eq!(source_prefix("amqp://localhost"), "amqp://localhost/%2f");
    }
}
