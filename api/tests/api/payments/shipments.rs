//! `POST /orders/{id}/shipments`: who may ship which lines, and when.

use poem::http::StatusCode;
use serde_json::{Value, json};
use test_support::{TestApp, TestResponse};
use uuid::Uuid;

use super::{line_statuses, order, pay, shop, status_of, stripe_fake, stripe_payments_app};
use crate::{
    checkout::accepted_job,
    helpers::{assert_error, id_of, invalid_fields},
};

async fn ship(
    app: &TestApp,
    order_id: &str,
    token: Option<&str>,
    line_ids: &[&str],
    tracking_code: &str,
) -> TestResponse {
    app.request(
        "POST",
        &format!("/api/v1/orders/{order_id}/shipments"),
        token,
        Some(json!({ "line_ids": line_ids, "tracking_code": tracking_code })),
    )
    .await
}

/// The line ids of an order as `token` sees it, with their seller ids.
async fn lines(app: &TestApp, order_id: &str, token: &str) -> Vec<(String, String)> {
    let view = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(token))
        .await;
    view.body["lines"]
        .as_array()
        .unwrap_or_else(|| panic!("no lines: {}", view.body))
        .iter()
        .map(|l| (id_of(l), l["seller_id"].as_str().unwrap().to_owned()))
        .collect()
}

#[tokio::test]
async fn each_seller_ships_only_their_own_paid_lines() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let (other_id, other_seller) = app.signed_up("other_seller").await;
    let (_, stranger) = app.signed_up("stranger").await;
    let cups = id_of(&app.create_listing(&other_seller, "Cups", 500, 5).await);
    app.add_to_cart(&shop.buyer, &cups, 1).await;
    let order_id = order(&app, &shop, 1).await;
    let all = lines(&app, &order_id, &shop.buyer).await;
    let cups_line = all.iter().find(|(_, s)| *s == other_id).unwrap().0.clone();
    let teapot_line = all.iter().find(|(_, s)| *s != other_id).unwrap().0.clone();

    // Not paid yet.
    assert_error(
        &ship(
            &app,
            &order_id,
            Some(&shop.seller),
            &[&teapot_line],
            "1Z999",
        )
        .await,
        StatusCode::CONFLICT,
        "order_not_paid",
    );
    pay(&app, &intents, &order_id).await;
    // Strangers do not learn the order exists; the buyer and other sellers are told no.
    assert_error(
        &ship(&app, &order_id, Some(&stranger), &[&teapot_line], "1Z999").await,
        StatusCode::NOT_FOUND,
        "order_not_found",
    );
    for (token, line) in [
        (&shop.buyer, &teapot_line),
        (&other_seller, &teapot_line),
        (&shop.seller, &cups_line),
    ] {
        assert_error(
            &ship(&app, &order_id, Some(token), &[line], "1Z999").await,
            StatusCode::FORBIDDEN,
            "not_line_seller",
        );
    }
    // All or nothing: one foreign line refuses the whole shipment.
    assert_error(
        &ship(
            &app,
            &order_id,
            Some(&shop.seller),
            &[&teapot_line, &cups_line],
            "1Z",
        )
        .await,
        StatusCode::FORBIDDEN,
        "not_line_seller",
    );
    assert_error(
        &ship(&app, &order_id, None, &[&teapot_line], "1Z999").await,
        StatusCode::UNAUTHORIZED,
        "unauthorized",
    );
    assert_eq!(
        line_statuses(&app, &order_id).await,
        ["awaiting_shipment"; 2]
    );

    let shipped = ship(
        &app,
        &order_id,
        Some(&shop.seller),
        &[&teapot_line],
        " 1Z999AA1 ",
    )
    .await;

    assert_eq!(shipped.status, StatusCode::OK, "{}", shipped.body);
    let shown: Vec<&Value> = shipped.body["lines"].as_array().unwrap().iter().collect();
    assert_eq!(shown.len(), 1, "the seller's own lines only");
    assert_eq!(shown[0]["status"], "shipped");
    assert_eq!(shown[0]["tracking_code"], "1Z999AA1");
    let other = ship(&app, &order_id, Some(&other_seller), &[&cups_line], "LX123").await;
    assert_eq!(other.status, StatusCode::OK, "{}", other.body);
    assert_eq!(line_statuses(&app, &order_id).await, ["shipped"; 2]);
    assert_eq!(status_of(&app, &order_id).await.0, "paid");
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_line_ships_once_with_a_valid_tracking_code_and_not_during_a_refund() {
    let (server, intents) = stripe_fake().await;
    let app = stripe_payments_app(&server).await;
    let shop = shop(&app, 1_000, 5).await;
    let order_id = order(&app, &shop, 1).await;
    pay(&app, &intents, &order_id).await;
    let line = lines(&app, &order_id, &shop.seller).await[0].0.clone();
    let unknown = Uuid::now_v7().to_string();

    for (ids, code, field) in [
        (vec![line.as_str()], "", "tracking_code"),
        (vec![line.as_str()], "   ", "tracking_code"),
        (vec![], "1Z999", "line_ids"),
    ] {
        let resp = ship(&app, &order_id, Some(&shop.seller), &ids, code).await;
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(invalid_fields(&resp), [field]);
    }
    let too_long = "x".repeat(151);
    let resp = ship(&app, &order_id, Some(&shop.seller), &[&line], &too_long).await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    let resp = ship(&app, &order_id, Some(&shop.seller), &[&unknown], "1Z999").await;
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "line_not_in_order");
    assert_eq!(invalid_fields(&resp), ["line_ids"]);

    // While the buyer's refund is under way, nothing may ship.
    let job = accepted_job(
        &app.request(
            "POST",
            &format!("/api/v1/orders/{order_id}/refund"),
            Some(&shop.buyer),
            None,
        )
        .await,
    );
    assert_error(
        &ship(&app, &order_id, Some(&shop.seller), &[&line], "1Z999").await,
        StatusCode::CONFLICT,
        "refund_in_progress",
    );
    sqlx::query("UPDATE jobs SET status = 'failed' WHERE id = $1")
        .bind(job)
        .execute(app.pool())
        .await
        .unwrap();

    let first = ship(
        &app,
        &order_id,
        Some(&shop.seller),
        &[&line],
        &"x".repeat(150),
    )
    .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    assert_error(
        &ship(&app, &order_id, Some(&shop.seller), &[&line], "1Z999").await,
        StatusCode::CONFLICT,
        "line_not_shippable",
    );
    assert_eq!(line_statuses(&app, &order_id).await, ["shipped"]);
    app.assert_stock_invariant().await;
}
