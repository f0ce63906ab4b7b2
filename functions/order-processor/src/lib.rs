//! `order-processor`: an example event-driven function. Bound to a RabbitMQ
//! queue (`flint trigger add order-processor --queue orders`), it receives
//! each order message as a CloudEvent, totals the order and answers with
//! the result (published to `reply_to` when the message asks for a reply).
//! Retries keep the event id, so it is logged for idempotent processing.

use flint_sdk::{CloudEvent, Request, Response, delivery_attempt};
use serde::{Deserialize, Serialize};

#[derive(Deserialize)]
struct Item {
    sku: String,
    qty: u32,
    price_cents: u64,
}

#[derive(Deserialize)]
struct Order {
    order_id: String,
    items: Vec<Item>,
}

#[derive(Serialize)]
struct Processed {
    order_id: String,
    total_cents: u64,
    items: usize,
    event_id: Option<String>,
}

fn handle(req: Request) -> Response {
    // Called by a queue trigger (a CloudEvent) or directly over HTTP.
    let event = match CloudEvent::from_request(&req) {
        Ok(event) => event,
        Err(err) => return Response::error(400, "invalid_event", err.to_string()),
    };
    let order: Result<Order, _> = match &event {
        Some(event) => event.data_json(),
        None => req.json(),
    };
    let order = match order {
        Ok(order) => order,
        Err(err) => return Response::error(400, "invalid_order", err.to_string()),
    };
    if order.items.iter().any(|i| i.sku.is_empty() || i.qty == 0) {
        return Response::error(
            422,
            "invalid_order",
            "every item needs a sku and a quantity",
        );
    }
    let total_cents = order
        .items
        .iter()
        .map(|i| i.price_cents * u64::from(i.qty))
        .sum();
    let event_id = event.map(|e| e.id);
    println!(
        "order {} total {total_cents} cents (event {}, attempt {})",
        order.order_id,
        event_id.as_deref().unwrap_or("-"),
        delivery_attempt(&req)
    );
    Response::json(
        200,
        &Processed {
            order_id: order.order_id,
            total_cents,
            items: order.items.len(),
            event_id,
        },
    )
}

flint_sdk::export!(handle);
