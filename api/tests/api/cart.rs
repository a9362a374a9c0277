//! The buyer's cart: adding and replacing quantities, the rules on what may be added, removal.

use poem::http::StatusCode;
use serde_json::{Value, json};
use test_support::{TestApp, TestResponse};
use uuid::Uuid;

use crate::helpers::{assert_error, count, delete, id_of, put, session};

fn item_path(listing: &Value) -> String {
    format!("/api/v1/cart/items/{}", id_of(listing))
}

async fn set_quantity(app: &TestApp, token: &str, listing: &Value, quantity: i64) -> TestResponse {
    put(
        app,
        &item_path(listing),
        Some(token),
        json!({ "quantity": quantity }),
    )
    .await
}

async fn cart_line_count(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM cart_lines").await
}

/// A seller (alice) with a listing, and a buyer (bob); returns `(bob's token, alice's token, listing)`.
async fn buyer_and_listing(
    app: &TestApp,
    price_cents: i64,
    quantity: i64,
) -> (String, String, Value) {
    let (_, alice, _) = session(app, "alice").await;
    let (_, bob, _) = session(app, "bob").await;
    let listing = app
        .create_listing(&alice, "Desk lamp", price_cents, quantity)
        .await;
    (bob, alice, listing)
}

#[tokio::test]
async fn an_empty_cart_has_no_items_and_a_zero_total() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "bob").await;

    // Act
    let resp = app.get("/api/v1/cart", Some(&token)).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(
        resp.body,
        json!({ "items": [], "total_cents": 0, "currency": "usd" })
    );
}

#[tokio::test]
async fn putting_items_returns_the_cart_with_line_totals_and_a_total() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, alice, lamp) = buyer_and_listing(&app, 1999, 5).await;
    let chair = app.create_listing(&alice, "Chair", 4500, 2).await;
    set_quantity(&app, &bob, &lamp, 3).await;

    // Act
    let resp = set_quantity(&app, &bob, &chair, 1).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(
        resp.body,
        json!({
            "items": [
                {
                    "listing_id": id_of(&lamp), "title": "Desk lamp", "unit_price_cents": 1999,
                    "currency": "usd", "quantity": 3, "line_total_cents": 5997, "available": 5,
                    "thumb_url": null,
                },
                {
                    "listing_id": id_of(&chair), "title": "Chair", "unit_price_cents": 4500,
                    "currency": "usd", "quantity": 1, "line_total_cents": 4500, "available": 2,
                    "thumb_url": null,
                },
            ],
            "total_cents": 10497,
            "currency": "usd",
        })
    );
    assert_eq!(app.get("/api/v1/cart", Some(&bob)).await.body, resp.body);
    assert_eq!(cart_line_count(&app).await, 2);
}

#[tokio::test]
async fn putting_the_same_item_again_replaces_its_quantity() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, _, lamp) = buyer_and_listing(&app, 1000, 5).await;
    set_quantity(&app, &bob, &lamp, 4).await;

    // Act
    let resp = set_quantity(&app, &bob, &lamp, 2).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["items"].as_array().unwrap().len(), 1);
    assert_eq!(resp.body["items"][0]["quantity"], 2);
    assert_eq!(resp.body["total_cents"], 2000);
    let stored: i32 = sqlx::query_scalar("SELECT quantity FROM cart_lines")
        .fetch_one(app.pool())
        .await
        .unwrap();
    assert_eq!(stored, 2);
}

#[tokio::test]
async fn a_seller_cannot_put_their_own_listing_in_their_cart() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, lamp) = buyer_and_listing(&app, 1000, 5).await;

    // Act
    let resp = set_quantity(&app, &alice, &lamp, 1).await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "own_listing");
    assert_eq!(cart_line_count(&app).await, 0);
}

#[tokio::test]
async fn an_inactive_listing_cannot_be_put_in_the_cart() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, alice, lamp) = buyer_and_listing(&app, 1000, 5).await;
    delete(
        &app,
        &format!("/api/v1/listings/{}", id_of(&lamp)),
        Some(&alice),
    )
    .await;

    // Act
    let resp = set_quantity(&app, &bob, &lamp, 1).await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "listing_inactive");
    assert_eq!(cart_line_count(&app).await, 0);
}

#[tokio::test]
async fn an_unknown_listing_is_a_404() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, bob, _) = session(&app, "bob").await;

    // Act
    let resp = put(
        &app,
        &format!("/api/v1/cart/items/{}", Uuid::now_v7()),
        Some(&bob),
        json!({ "quantity": 1 }),
    )
    .await;

    // Assert
    assert_error(&resp, StatusCode::NOT_FOUND, "listing_not_found");
    assert_eq!(cart_line_count(&app).await, 0);
}

#[tokio::test]
async fn a_quantity_below_one_is_a_422_invalid_quantity() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, _, lamp) = buyer_and_listing(&app, 1000, 5).await;

    for quantity in [0, -3] {
        // Act
        let resp = set_quantity(&app, &bob, &lamp, quantity).await;

        // Assert
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity");
        assert_eq!(resp.body["error"]["details"]["available"], 5);
    }
    assert_eq!(cart_line_count(&app).await, 0);
}

#[tokio::test]
async fn a_quantity_above_the_available_units_is_a_422_and_reserved_units_do_not_count() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, _, lamp) = buyer_and_listing(&app, 1000, 5).await;
    sqlx::query("UPDATE listings SET reserved = 3")
        .execute(app.pool())
        .await
        .unwrap();

    // Act
    let too_many = set_quantity(&app, &bob, &lamp, 3).await;
    let all_available = set_quantity(&app, &bob, &lamp, 2).await;

    // Assert
    assert_error(
        &too_many,
        StatusCode::UNPROCESSABLE_ENTITY,
        "invalid_quantity",
    );
    assert_eq!(too_many.body["error"]["details"]["available"], 2);
    assert_eq!(
        all_available.status,
        StatusCode::OK,
        "{}",
        all_available.body
    );
    assert_eq!(all_available.body["items"][0]["quantity"], 2);
    assert_eq!(all_available.body["items"][0]["available"], 2);
}

#[tokio::test]
async fn a_huge_quantity_is_a_422_not_an_overflow() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, _, lamp) = buyer_and_listing(&app, 1000, 5).await;

    // Act
    let resp = set_quantity(&app, &bob, &lamp, i64::MAX).await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "invalid_quantity");
    assert_eq!(cart_line_count(&app).await, 0);
}

#[tokio::test]
async fn a_listing_in_another_currency_than_the_cart_is_a_422() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, alice, lamp) = buyer_and_listing(&app, 1000, 5).await;
    let teapot = app
        .post(
            "/api/v1/listings",
            Some(&alice),
            json!({ "title": "Teapot", "price_cents": 900, "currency": "eur", "quantity": 1 }),
        )
        .await
        .body;
    set_quantity(&app, &bob, &lamp, 1).await;

    // Act
    let resp = set_quantity(&app, &bob, &teapot, 1).await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "currency_mismatch");
    assert_eq!(resp.body["error"]["details"]["cart_currency"], "usd");
    assert_eq!(resp.body["error"]["details"]["listing_currency"], "eur");
    assert_eq!(cart_line_count(&app).await, 1);
}

#[tokio::test]
async fn deleting_an_item_removes_only_that_line() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, alice, lamp) = buyer_and_listing(&app, 1000, 5).await;
    let chair = app.create_listing(&alice, "Chair", 4500, 2).await;
    set_quantity(&app, &bob, &lamp, 1).await;
    set_quantity(&app, &bob, &chair, 1).await;

    // Act
    let resp = delete(&app, &item_path(&lamp), Some(&bob)).await;

    // Assert
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    let cart = app.get("/api/v1/cart", Some(&bob)).await;
    let ids: Vec<&str> = cart.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["listing_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [id_of(&chair)]);
    assert_eq!(cart.body["total_cents"], 4500);
    assert_eq!(
        delete(&app, &item_path(&lamp), Some(&bob)).await.status,
        StatusCode::NO_CONTENT,
        "idempotent"
    );
}

#[tokio::test]
async fn deleting_the_cart_empties_it_without_touching_other_buyers() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, alice, lamp) = buyer_and_listing(&app, 1000, 5).await;
    let chair = app.create_listing(&alice, "Chair", 4500, 2).await;
    let (_, carol, _) = session(&app, "carol").await;
    set_quantity(&app, &bob, &lamp, 1).await;
    set_quantity(&app, &bob, &chair, 2).await;
    set_quantity(&app, &carol, &lamp, 1).await;

    // Act
    let resp = delete(&app, "/api/v1/cart", Some(&bob)).await;

    // Assert
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    let cart = app.get("/api/v1/cart", Some(&bob)).await;
    assert_eq!(
        cart.body,
        json!({ "items": [], "total_cents": 0, "currency": "usd" })
    );
    assert_eq!(cart_line_count(&app).await, 1, "carol's line is kept");
    assert_eq!(
        app.get("/api/v1/cart", Some(&carol)).await.body["items"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[tokio::test]
async fn a_deactivated_listing_stays_in_the_cart_with_nothing_available() {
    // Arrange
    let app = TestApp::spawn().await;
    let (bob, alice, lamp) = buyer_and_listing(&app, 1000, 5).await;
    set_quantity(&app, &bob, &lamp, 2).await;
    delete(
        &app,
        &format!("/api/v1/listings/{}", id_of(&lamp)),
        Some(&alice),
    )
    .await;

    // Act
    let cart = app.get("/api/v1/cart", Some(&bob)).await;

    // Assert
    assert_eq!(cart.status, StatusCode::OK, "{}", cart.body);
    assert_eq!(cart.body["items"][0]["available"], 0);
    assert_eq!(cart.body["items"][0]["quantity"], 2);
}

#[tokio::test]
async fn the_cart_requires_a_signed_in_user() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, _, lamp) = buyer_and_listing(&app, 1000, 5).await;

    // Act
    let answers = [
        app.get("/api/v1/cart", None).await,
        put(&app, &item_path(&lamp), None, json!({ "quantity": 1 })).await,
        delete(&app, &item_path(&lamp), None).await,
        delete(&app, "/api/v1/cart", None).await,
    ];

    // Assert
    for resp in &answers {
        assert_error(resp, StatusCode::UNAUTHORIZED, "unauthorized");
    }
    assert_eq!(cart_line_count(&app).await, 0);
}
