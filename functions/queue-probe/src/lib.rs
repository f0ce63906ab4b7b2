//! `queue-probe`: the test function of the queue-trigger tests.
//!
//! The message body is JSON `{"mode": ..., "n": N, "sleep_ms": M}`:
//! `ok` answers 200; `fail` answers 500; `trap` panics (the call traps);
//! `fail-times` answers 500 while the delivery attempt is at most `n`, then
//! 200. `sleep_ms` holds the call that long (to observe concurrency). Each call writes `begin <ce-id> <attempt>`
//! and `end <ce-id>` to stdout; a 200 answer is JSON describing the event it
//! saw (CloudEvent attributes, attempt, `x-amqp-*` headers), which the
//! tests read back through `reply_to`.

use flint_sdk::{CloudEvent, Request, Response, delivery_attempt};
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Deserialize, Default)]
struct Command {
    #[serde(default)]
    mode: String,
    #[serde(default)]
    n: u32,
    #[serde(default)]
    sleep_ms: u64,
}

fn handle(req: Request) -> Response {
    let attempt = delivery_attempt(&req);
    let event = match CloudEvent::from_request(&req) {
        Ok(Some(event)) => event,
        Ok(None) => return Response::error(400, "not_an_event", "expected a CloudEvent"),
        Err(err) => return Response::error(400, "invalid_event", err.to_string()),
    };
    println!("begin {} {attempt}", event.id);
    let command: Command = event.data_json().unwrap_or_default();
    if command.sleep_ms > 0 {
        std::thread::sleep(std::time::Duration::from_millis(command.sleep_ms));
    }
    println!("end {}", event.id);
    let fail = match command.mode.as_str() {
        "trap" => panic!("asked to trap"),
        "fail" => true,
        "fail-times" => attempt <= command.n,
        _ => false,
    };
    if fail {
        return Response::error(500, "asked_to_fail", format!("attempt {attempt}"));
    }
    let amqp: BTreeMap<&str, &str> = req
        .headers()
        .filter(|(k, _)| k.starts_with("x-amqp-"))
        .collect();
    Response::json(
        200,
        &serde_json::json!({
            "id": event.id,
            "source": event.source,
            "type": event.ty,
            "specversion": event.specversion,
            "time": event.time,
            "content_type": event.datacontenttype,
            "attempt": attempt,
            "amqp_headers": amqp,
            "data": String::from_utf8_lossy(&event.data),
        }),
    )
}

flint_sdk::export!(handle);
