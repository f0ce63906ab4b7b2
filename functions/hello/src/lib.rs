//! `hello`: the smallest Flint function. Answers every request with a
//! plain-text greeting.

use flint_sdk::{Request, Response};

fn handle(_req: Request) -> Response {
    Response::text(200, "Hello from Flint!\n")
}

flint_sdk::export!(handle);
