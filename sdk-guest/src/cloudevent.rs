//! CloudEvents for functions invoked by events (Flint's RabbitMQ triggers).
//!
//! Flint delivers a queue message as `POST /` in the CloudEvents HTTP
//! *binary* mode: the body is the event data and the attributes are `ce-*`
//! headers. A message that already is a *structured* CloudEvent
//! (`content-type: application/cloudevents+json`) arrives as it is.
//! [`CloudEvent::from_request`] reads either.

use crate::{Error, Request};
use serde::de::DeserializeOwned;

/// Header with the 1-based delivery attempt of a queue message.
pub const ATTEMPT_HEADER: &str = "x-flint-attempt";

/// A CloudEvent (spec 1.0) received by a function.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CloudEvent {
    /// `id`: unique per event from one source; retries keep it, so use it to
    /// make processing idempotent.
    pub id: String,
    /// `source`: e.g. `amqp://HOST/VHOST/QUEUE`.
    pub source: String,
    /// `type`.
    pub ty: String,
    /// `specversion` (`1.0`).
    pub specversion: String,
    /// `time`, RFC 3339, if given.
    pub time: Option<String>,
    /// `datacontenttype`, if given.
    pub datacontenttype: Option<String>,
    /// `subject`, if given.
    pub subject: Option<String>,
    /// The event data as bytes.
    pub data: Vec<u8>,
}

#[derive(serde::Deserialize)]
struct Structured {
    id: String,
    source: String,
    #[serde(rename = "type")]
    ty: String,
    specversion: String,
    time: Option<String>,
    datacontenttype: Option<String>,
    subject: Option<String>,
    data: Option<serde_json::Value>,
}

impl CloudEvent {
    /// Reads the event from a request: `Ok(None)` when the request carries
    /// no CloudEvent (a plain HTTP call), an error when a structured event
    /// is malformed.
    pub fn from_request(req: &Request) -> Result<Option<CloudEvent>, Error> {
        let content_type = req.header("content-type").unwrap_or_default();
        if content_type.starts_with("application/cloudevents+json") {
            let event: Structured = req.json()?;
            let data = match event.data {
                Some(serde_json::Value::String(s)) => s.into_bytes(),
                Some(other) => serde_json::to_vec(&other).map_err(Error::Json)?,
                None => Vec::new(),
            };
            return Ok(Some(CloudEvent {
                id: event.id,
                source: event.source,
                ty: event.ty,
                specversion: event.specversion,
                time: event.time,
                datacontenttype: event.datacontenttype,
                subject: event.subject,
                data,
            }));
        }
        let attr = |name: &str| req.header(name).map(str::to_owned);
        let (Some(id), Some(source), Some(ty)) =
            (attr("ce-id"), attr("ce-source"), attr("ce-type"))
        else {
            return Ok(None);
        };
        Ok(Some(CloudEvent {
            id,
            source,
            ty,
            specversion: attr("ce-specversion").unwrap_or_else(|| "1.0".to_owned()),
            time: attr("ce-time"),
            datacontenttype: attr("content-type"),
            subject: attr("ce-subject"),
            data: req.body().to_vec(),
        }))
    }

    /// The data parsed as JSON.
    pub fn data_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.data).map_err(Error::Json)
    }
}

/// The delivery attempt of a queue message (1 for the first delivery).
pub fn delivery_attempt(req: &Request) -> u32 {
    req.header(ATTEMPT_HEADER)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Method;

    #[test]
    fn binary_mode_event() {
        let req = Request::new(Method::Post, "/")
            .with_header("ce-id", "m-1")
            .with_header("ce-source", "amqp://h/%2f/orders")
            .with_header("ce-type", "order.created")
            .with_header("ce-specversion", "1.0")
            .with_header("content-type", "application/json")
            .with_header(ATTEMPT_HEADER, "3")
            .with_body(r#"{"n":1}"#);
        let event = CloudEvent::from_request(&req).unwrap().unwrap();
        assert_eq!(event.id, "m-1");
        assert_eq!(event.ty, "order.created");
        assert_eq!(event.data_json::<serde_json::Value>().unwrap()["n"], 1);
        assert_eq!(delivery_attempt(&req), 3);
    }

    #[test]
    fn structured_mode_event_and_plain_requests() {
        let req = Request::new(Method::Post, "/")
            .with_header("content-type", "application/cloudevents+json")
            .with_body(r#"{"specversion":"1.0","id":"e","source":"s","type":"t","data":{"a":2}}"#);
        let event = CloudEvent::from_request(&req).unwrap().unwrap();
        assert_eq!(event.data_json::<serde_json::Value>().unwrap()["a"], 2);
        assert_eq!(
            CloudEvent::from_request(&Request::new(Method::Get, "/")).unwrap(),
            None
        );
        let bad = Request::new(Method::Post, "/")
            .with_header("content-type", "application/cloudevents+json")
            .with_body("{");
        assert!(CloudEvent::from_request(&bad).is_err());
    }
}
