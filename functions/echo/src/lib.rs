//! `echo`: JSON in, transformed JSON out.
//!
//! `POST {"message": "hi", ...}` answers
//! `{"echo": <the input>, "upper": "HI", "length": 2, "method": "POST", "path": "/..."}`,
//! where `length` counts Unicode scalar values. A body that is not JSON gets
//! `400 invalid_json`; JSON without a string `message` gets `400 missing_message`.

use flint_sdk::{Request, Response};
use serde_json::{Value, json};

fn handle(req: Request) -> Response {
    let input: Value = match req.json() {
        Ok(input) => input,
        Err(err) => return Response::error(400, "invalid_json", err.to_string()),
    };
    let Some(message) = input.get("message").and_then(Value::as_str) else {
        return Response::error(
            400,
            "missing_message",
            "expected a JSON object with a string field \"message\"",
        );
    };
    let upper = message.to_uppercase();
    let length = message.chars().count();
    Response::json(
        200,
        &json!({
            "echo": input,
            "upper": upper,
            "length": length,
            "method": req.method().as_str(),
            "path": req.path(),
        }),
    )
}

flint_sdk::export!(handle);
