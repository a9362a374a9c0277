//! Orders after checkout: snapshots, the buyer's and the sellers' views, pagination and
//! cancellation (dev payment mode and a Stripe fake).

use poem::http::StatusCode;
use serde_json::{Value, json};
use test_support::{
    TestApp,
    stripe::{header, intent_id_for, requests_to, stripe_app, stripe_fake},
};
use uuid::Uuid;

use crate::{
    checkout::{orders, place_order},
    helpers::{assert_error, id_of, item_ids, patch},
};

fn order_url(order_id: &str) -> String {
    format!("/api/v1/orders/{order_id}")
}

async fn cancel(app: &TestApp, order_id: &str, token: Option<&str>) -> test_support::TestResponse {
    app.request(
        "POST",
        &format!("/api/v1/orders/{order_id}/cancel"),
        token,
        None,
    )
    .await
}

fn line_listing_ids(order: &Value) -> Vec<String> {
    order["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines: {order}"))
        .iter()
        .map(|l| l["listing_id"].as_str().expect("listing_id").to_owned())
        .collect()
}

// ---------------------------------------------------------------------------------------------
// 11. Snapshots.

#[tokio::test]
async fn an_order_keeps_what_was_bought_after_the_listing_changes() {
    let app = TestApp::spawn().await;
    let (seller_id, seller) = app.signed_up("seller").await;
    let listing = id_of(&app.create_listing(&seller, "Old title", 1_250, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &listing, 2).await;
    let (_, order_id) = place_order(&app, &buyer, &address, "k").await;

    let edited = patch(
        &app,
        &format!("/api/v1/listings/{listing}"),
        Some(&seller),
        json!({ "title": "New title", "price_cents": 9_999 }),
    )
    .await;
    assert_eq!(edited.status, StatusCode::OK, "{}", edited.body);
    assert_eq!(edited.body["title"], "New title");
    // The address changes too; the order keeps the one it shipped to.
    sqlx::query("UPDATE addresses SET line1 = '99 Elsewhere Rd' WHERE id = $1")
        .bind(address.parse::<Uuid>().unwrap())
        .execute(app.pool())
        .await
        .unwrap();

    let order = app.get(&order_url(&order_id), Some(&buyer)).await;

    assert_eq!(order.status, StatusCode::OK, "{}", order.body);
    assert_eq!(order.body["total_cents"], 2_500);
    assert_eq!(order.body["currency"], "usd");
    let line = &order.body["lines"][0];
    assert_eq!(line["title"], "Old title");
    assert_eq!(line["unit_price_cents"], 1_250);
    assert_eq!(line["quantity"], 2);
    assert_eq!(line["listing_id"], listing);
    assert_eq!(line["seller_id"], seller_id);
    assert_eq!(line["seller_username"], "seller");
    assert_eq!(line["status"], "awaiting_payment");
    let shipping = &order.body["shipping_address"];
    assert_eq!(shipping["address_id"], address);
    assert_eq!(shipping["line1"], "1 Main St");
    assert_eq!(shipping["city"], "Springfield");
    assert_eq!(shipping["postal_code"], "12345");
    assert_eq!(shipping["country"], "US");
    assert_eq!(
        shipping["formatted_address"],
        "1 Main St, Springfield 12345, USA"
    );
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 12. Who sees what.

#[tokio::test]
async fn buyers_see_whole_orders_and_sellers_only_their_own_lines() {
    let app = TestApp::spawn().await;
    let (first_id, first) = app.signed_up("first_seller").await;
    let (second_id, second) = app.signed_up("second_seller").await;
    let (_, stranger) = app.signed_up("stranger").await;
    let a = id_of(&app.create_listing(&first, "Teapot", 1_000, 5).await);
    let b = id_of(&app.create_listing(&second, "Cups", 2_000, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &a, 1).await;
    app.add_to_cart(&buyer, &b, 2).await;
    let (_, order_id) = place_order(&app, &buyer, &address, "k").await;

    // The buyer: everything, including the secret to pay with.
    let mine = app.get("/api/v1/orders", Some(&buyer)).await;
    assert_eq!(mine.status, StatusCode::OK, "{}", mine.body);
    assert_eq!(item_ids(&mine), std::slice::from_ref(&order_id));
    let order = &mine.body["items"][0];
    assert_eq!(order["status"], "pending_payment");
    assert_eq!(order["total_cents"], 5_000);
    let mut lines = line_listing_ids(order);
    lines.sort();
    assert_eq!(lines, [a.clone(), b.clone()]);
    assert!(order["client_secret"].is_string(), "{order}");
    assert!(order["payment_intent_id"].is_string(), "{order}");
    assert_eq!(mine.body["next_cursor"], Value::Null);
    let single = app.get(&order_url(&order_id), Some(&buyer)).await;
    assert_eq!(single.body["client_secret"], order["client_secret"]);

    // Each seller: only their own lines and their total, never the buyer's payment secret.
    for (token, seller_id, listing, total) in [
        (&first, &first_id, &a, 1_000),
        (&second, &second_id, &b, 4_000),
    ] {
        let sold = app.get("/api/v1/orders?role=seller", Some(token)).await;
        assert_eq!(sold.status, StatusCode::OK, "{}", sold.body);
        assert_eq!(item_ids(&sold), std::slice::from_ref(&order_id));
        let view = &sold.body["items"][0];
        assert_eq!(line_listing_ids(view), std::slice::from_ref(listing));
        assert_eq!(view["lines"][0]["seller_id"], *seller_id);
        assert_eq!(view["total_cents"], total);
        assert_eq!(view["client_secret"], Value::Null, "{view}");
        assert_eq!(view["payment_intent_id"], Value::Null, "{view}");
        let single = app.get(&order_url(&order_id), Some(token)).await;
        assert_eq!(single.status, StatusCode::OK);
        assert_eq!(
            line_listing_ids(&single.body),
            std::slice::from_ref(listing)
        );
        assert_eq!(single.body["client_secret"], Value::Null);
        // As a buyer, a seller has no orders.
        let bought = app.get("/api/v1/orders", Some(token)).await;
        assert!(item_ids(&bought).is_empty());
    }
    let sold_by_buyer = app.get("/api/v1/orders?role=seller", Some(&buyer)).await;
    assert!(item_ids(&sold_by_buyer).is_empty());

    // Anyone else: the order does not exist.
    assert_error(
        &app.get(&order_url(&order_id), Some(&stranger)).await,
        StatusCode::NOT_FOUND,
        "order_not_found",
    );
    assert!(item_ids(&app.get("/api/v1/orders", Some(&stranger)).await).is_empty());
    assert_error(
        &app.get(&order_url(&order_id), None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_error(
        &app.get(&order_url(&Uuid::now_v7().to_string()), Some(&buyer))
            .await,
        StatusCode::NOT_FOUND,
        "order_not_found",
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn orders_page_through_with_a_cursor_each_exactly_once() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let listing = id_of(&app.create_listing(&seller, "Candle", 700, 10).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    let mut placed = Vec::new();
    for i in 0..3 {
        app.add_to_cart(&buyer, &listing, 1).await;
        placed.push(
            place_order(&app, &buyer, &address, &format!("k{i}"))
                .await
                .1,
        );
    }

    let mut seen = Vec::new();
    let mut url = "/api/v1/orders?limit=1".to_owned();
    for _ in 0..4 {
        let page = app.get(&url, Some(&buyer)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        let ids = item_ids(&page);
        assert!(ids.len() <= 1, "{}", page.body);
        seen.extend(ids);
        match page.body["next_cursor"].as_str() {
            Some(cursor) => url = format!("/api/v1/orders?limit=1&cursor={cursor}"),
            None => break,
        }
    }

    placed.reverse(); // newest first
    assert_eq!(seen, placed);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn bad_order_list_parameters_are_422() {
    let app = TestApp::spawn().await;
    let (_, user) = app.signed_up("user").await;
    for (query, field) in [
        ("role=bogus", "role"),
        ("limit=0", "limit"),
        ("limit=101", "limit"),
    ] {
        let resp = app
            .get(&format!("/api/v1/orders?{query}"), Some(&user))
            .await;
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert!(
            resp.body["error"]["details"]["fields"][field].is_string(),
            "{query}: {}",
            resp.body
        );
    }
    // A cursor is opaque: garbage, a bare order id or a listing cursor is refused as such.
    let listing_cursor = base64::Engine::encode(
        &base64::engine::general_purpose::URL_SAFE_NO_PAD,
        format!("p:5:{}", Uuid::now_v7()),
    );
    for cursor in [
        "not-a-cursor".to_owned(),
        Uuid::now_v7().to_string(),
        listing_cursor,
    ] {
        let resp = app
            .get(&format!("/api/v1/orders?cursor={cursor}"), Some(&user))
            .await;
        assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_cursor");
    }
    assert_error(
        &app.get("/api/v1/orders", None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
}

// ---------------------------------------------------------------------------------------------
// 13. Cancellation.

#[tokio::test]
async fn the_buyer_cancels_a_pending_order_and_the_stock_comes_back() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let (_, stranger) = app.signed_up("stranger").await;
    let listing = id_of(&app.create_listing(&seller, "Rug", 6_000, 4).await);
    let later = id_of(&app.create_listing(&seller, "Cushion", 1_500, 4).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &listing, 3).await;
    let (_, order_id) = place_order(&app, &buyer, &address, "k").await;
    assert_eq!(app.stock(&listing).await, (4, 3));
    assert_eq!(app.gate_counter(&listing).await, Some(1));
    // The buyer keeps shopping meanwhile.
    app.add_to_cart(&buyer, &later, 1).await;

    for token in [&seller, &stranger] {
        assert_error(
            &cancel(&app, &order_id, Some(token)).await,
            StatusCode::NOT_FOUND,
            "order_not_found",
        );
    }
    assert_error(
        &cancel(&app, &order_id, None).await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(
        app.stock(&listing).await,
        (4, 3),
        "refusals changed nothing"
    );

    let cancelled = cancel(&app, &order_id, Some(&buyer)).await;

    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["id"], order_id);
    assert_eq!(cancelled.body["status"], "cancelled");
    assert_eq!(cancelled.body["status_reason"], "cancelled_by_buyer");
    assert_eq!(cancelled.body["client_secret"], Value::Null);
    assert_eq!(cancelled.body["lines"][0]["status"], "cancelled");
    assert_eq!(app.stock(&listing).await, (4, 0));
    assert_eq!(app.gate_counter(&listing).await, Some(4));
    let cart = app.get("/api/v1/cart", Some(&buyer)).await;
    let items = cart.body["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "the cart is untouched: {}", cart.body);
    assert_eq!(items[0]["listing_id"], later);
    assert_eq!(items[0]["quantity"], 1);

    let again = cancel(&app, &order_id, Some(&buyer)).await;
    assert_error(&again, StatusCode::CONFLICT, "order_not_pending");
    assert_eq!(again.body["error"]["details"]["status"], "cancelled");
    let order = app.get(&order_url(&order_id), Some(&buyer)).await;
    assert_eq!(order.body["status"], "cancelled");
    assert_eq!(order.body["client_secret"], Value::Null);
    assert_eq!(app.stock(&listing).await, (4, 0));
    assert_eq!(app.gate_counter(&listing).await, Some(4), "released once");
    assert_eq!(orders(&app).await, 1);
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn cancelling_with_stripe_cancels_the_payment_intent() {
    let (server, _) = stripe_fake().await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let listing = id_of(&app.create_listing(&seller, "Rug", 6_000, 4).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &listing, 2).await;
    let (_, order_id) = place_order(&app, &buyer, &address, "k").await;
    let intent_id = intent_id_for(&order_id);
    let order = app.get(&order_url(&order_id), Some(&buyer)).await;
    assert_eq!(order.body["payment_intent_id"], intent_id);

    let cancelled = cancel(&app, &order_id, Some(&buyer)).await;

    assert_eq!(cancelled.status, StatusCode::OK, "{}", cancelled.body);
    assert_eq!(cancelled.body["status"], "cancelled");
    let cancels = requests_to(
        &server,
        "POST",
        &format!("/v1/payment_intents/{intent_id}/cancel"),
    )
    .await;
    assert_eq!(cancels.len(), 1, "the fake received the cancel");
    assert_eq!(
        header(&cancels[0], "idempotency-key"),
        Some(format!("order-{order_id}-cancel").as_str())
    );
    assert_eq!(app.stock(&listing).await, (4, 0));
    assert_eq!(app.gate_counter(&listing).await, Some(4));
    app.assert_stock_invariant().await;
}
