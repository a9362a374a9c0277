//! Listings: create and validate, owner-only writes, soft delete and reactivation, stock rules,
//! search, sorting and keyset pagination.

use std::collections::HashSet;

use poem::http::StatusCode;
use serde_json::{Value, json};
use test_support::{TestApp, TestResponse};
use uuid::Uuid;

use crate::helpers::{
    assert_error, count, delete, encode, id_of, invalid_fields, item_ids, patch, session,
};

async fn create(app: &TestApp, token: Option<&str>, body: Value) -> TestResponse {
    app.post("/api/v1/listings", token, body).await
}

fn path(listing: &Value) -> String {
    format!("/api/v1/listings/{}", id_of(listing))
}

async fn listing_count(app: &TestApp) -> i64 {
    count(app, "SELECT count(*) FROM listings").await
}

// Create ----------------------------------------------------------------------------------------

#[tokio::test]
async fn creating_a_listing_returns_it_with_stock_seller_and_default_currency() {
    // Arrange
    let app = TestApp::spawn().await;
    let (seller_id, token, _) = session(&app, "alice").await;

    // Act
    let resp = create(
        &app,
        Some(&token),
        json!({ "title": "  Desk lamp  ", "description": "Brass, works", "price_cents": 1999, "quantity": 3 }),
    )
    .await;

    // Assert
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    let l = &resp.body;
    assert_eq!(l["title"], "Desk lamp", "titles are trimmed");
    assert_eq!(l["description"], "Brass, works");
    assert_eq!(l["price_cents"], 1999);
    assert_eq!(l["currency"], "usd");
    assert_eq!(l["quantity"], 3);
    assert_eq!(l["available"], 3);
    assert_eq!(l["seller"], json!({ "id": seller_id, "username": "alice" }));
    assert_eq!(l["is_active"], true);
    assert!(l["created_at"].is_string());
    let id: Uuid = id_of(l).parse().unwrap();
    let (stored_seller, price, reserved): (Uuid, i64, i32) =
        sqlx::query_as("SELECT seller_id, price_cents, reserved FROM listings WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        (stored_seller.to_string(), price, reserved),
        (seller_id, 1999, 0)
    );
}

#[tokio::test]
async fn a_given_currency_is_stored_and_the_description_defaults_to_empty() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;

    // Act
    let resp = create(
        &app,
        Some(&token),
        json!({ "title": "Tea set", "price_cents": 800, "currency": "eur", "quantity": 1 }),
    )
    .await;

    // Assert
    assert_eq!(resp.status, StatusCode::CREATED, "{}", resp.body);
    assert_eq!(resp.body["currency"], "eur");
    assert_eq!(resp.body["description"], "");
}

#[tokio::test]
async fn invalid_listing_fields_are_a_422_naming_each_field_and_nothing_is_written() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;
    let cases = [
        (
            json!({ "title": "ab", "price_cents": 100, "quantity": 1 }),
            vec!["title"],
        ),
        (
            json!({ "title": "   ab   ", "price_cents": 100, "quantity": 1 }),
            vec!["title"],
        ),
        (
            json!({ "title": "x".repeat(256), "price_cents": 100, "quantity": 1 }),
            vec!["title"],
        ),
        (
            json!({ "title": "Lamp", "price_cents": 0, "quantity": 1 }),
            vec!["price_cents"],
        ),
        (
            json!({ "title": "Lamp", "price_cents": -5, "quantity": 1 }),
            vec!["price_cents"],
        ),
        (
            json!({ "title": "Lamp", "price_cents": 100, "quantity": 0 }),
            vec!["quantity"],
        ),
        (
            json!({ "title": "Lamp", "price_cents": 100, "quantity": 1, "currency": "dollars" }),
            vec!["currency"],
        ),
        (
            json!({ "title": "", "price_cents": 0, "quantity": -1 }),
            vec!["price_cents", "quantity", "title"],
        ),
    ];

    for (body, fields) in cases {
        // Act
        let resp = create(&app, Some(&token), body.clone()).await;

        // Assert
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(invalid_fields(&resp), fields, "body {body}");
    }
    assert_eq!(listing_count(&app).await, 0);
}

#[tokio::test]
async fn titles_of_3_and_255_characters_are_accepted() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;

    // Act
    let short = create(
        &app,
        Some(&token),
        json!({ "title": "Pen", "price_cents": 1, "quantity": 1 }),
    )
    .await;
    let long = create(
        &app,
        Some(&token),
        json!({ "title": "é".repeat(255), "price_cents": 1, "quantity": 1 }),
    )
    .await;

    // Assert
    assert_eq!(short.status, StatusCode::CREATED, "{}", short.body);
    assert_eq!(long.status, StatusCode::CREATED, "{}", long.body);
    assert_eq!(listing_count(&app).await, 2);
}

#[tokio::test]
async fn creating_a_listing_anonymously_is_a_401() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = create(
        &app,
        None,
        json!({ "title": "Lamp", "price_cents": 100, "quantity": 1 }),
    )
    .await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(listing_count(&app).await, 0);
}

// Read, update, delete --------------------------------------------------------------------------

#[tokio::test]
async fn anyone_can_read_an_active_listing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;
    let lamp = app.create_listing(&token, "Desk lamp", 1999, 3).await;

    // Act
    let resp = app.get(&path(&lamp), None).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body, lamp);
}

#[tokio::test]
async fn an_unknown_listing_is_a_404() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app
        .get(&format!("/api/v1/listings/{}", Uuid::now_v7()), None)
        .await;

    // Assert
    assert_error(&resp, StatusCode::NOT_FOUND, "listing_not_found");
}

#[tokio::test]
async fn the_seller_can_patch_any_field() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;
    let lamp = app.create_listing(&token, "Desk lamp", 1999, 3).await;

    // Act
    let resp = patch(
        &app,
        &path(&lamp),
        Some(&token),
        json!({ "title": "Brass lamp", "description": "Shiny", "price_cents": 2500, "currency": "gbp", "quantity": 0 }),
    )
    .await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["title"], "Brass lamp");
    assert_eq!(resp.body["description"], "Shiny");
    assert_eq!(resp.body["price_cents"], 2500);
    assert_eq!(resp.body["currency"], "gbp");
    assert_eq!(resp.body["quantity"], 0);
    assert_eq!(resp.body["available"], 0);
    let (title, price): (String, i64) =
        sqlx::query_as("SELECT title, price_cents FROM listings WHERE id = $1")
            .bind(id_of(&lamp).parse::<Uuid>().unwrap())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!((title.as_str(), price), ("Brass lamp", 2500));
}

#[tokio::test]
async fn invalid_patch_fields_are_a_422_and_change_nothing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;
    let lamp = app.create_listing(&token, "Desk lamp", 1999, 3).await;
    let cases = [
        (json!({ "title": "ab" }), vec!["title"]),
        (json!({ "price_cents": 0 }), vec!["price_cents"]),
        (json!({ "quantity": -1 }), vec!["quantity"]),
        (
            json!({ "title": "x".repeat(256), "quantity": -1 }),
            vec!["quantity", "title"],
        ),
    ];

    for (body, fields) in cases {
        // Act
        let resp = patch(&app, &path(&lamp), Some(&token), body.clone()).await;

        // Assert
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(invalid_fields(&resp), fields, "body {body}");
    }
    assert_eq!(app.get(&path(&lamp), None).await.body, lamp);
}

#[tokio::test]
async fn only_the_seller_may_patch_or_delete_a_listing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let (_, bob, _) = session(&app, "bob").await;
    let lamp = app.create_listing(&alice, "Desk lamp", 1999, 3).await;

    // Act
    let bob_patch = patch(&app, &path(&lamp), Some(&bob), json!({ "price_cents": 1 })).await;
    let bob_delete = delete(&app, &path(&lamp), Some(&bob)).await;
    let anonymous_patch = patch(&app, &path(&lamp), None, json!({ "price_cents": 1 })).await;
    let anonymous_delete = delete(&app, &path(&lamp), None).await;

    // Assert
    assert_error(&bob_patch, StatusCode::FORBIDDEN, "not_owner");
    assert_error(&bob_delete, StatusCode::FORBIDDEN, "not_owner");
    assert_error(&anonymous_patch, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_error(&anonymous_delete, StatusCode::UNAUTHORIZED, "unauthorized");
    assert_eq!(
        app.get(&path(&lamp), None).await.body,
        lamp,
        "the listing is unchanged"
    );
}

#[tokio::test]
async fn deleting_hides_the_listing_from_others_but_not_from_its_seller() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let (_, bob, _) = session(&app, "bob").await;
    let lamp = app.create_listing(&alice, "Desk lamp", 1999, 3).await;

    // Act
    let resp = delete(&app, &path(&lamp), Some(&alice)).await;

    // Assert
    assert_eq!(resp.status, StatusCode::NO_CONTENT, "{}", resp.body);
    assert_error(
        &app.get(&path(&lamp), None).await,
        StatusCode::NOT_FOUND,
        "listing_not_found",
    );
    assert_error(
        &app.get(&path(&lamp), Some(&bob)).await,
        StatusCode::NOT_FOUND,
        "listing_not_found",
    );
    assert!(item_ids(&app.get("/api/v1/listings", None).await).is_empty());
    assert!(item_ids(&app.get("/api/v1/listings", Some(&bob)).await).is_empty());
    let own = app.get(&path(&lamp), Some(&alice)).await;
    assert_eq!(own.status, StatusCode::OK, "{}", own.body);
    assert_eq!(own.body["is_active"], false);
    assert_eq!(
        item_ids(&app.get("/api/v1/listings", Some(&alice)).await),
        [id_of(&lamp)]
    );
    let (active, deleted): (bool, bool) =
        sqlx::query_as("SELECT is_active, deleted_at IS NOT NULL FROM listings WHERE id = $1")
            .bind(id_of(&lamp).parse::<Uuid>().unwrap())
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!(
        (active, deleted),
        (false, true),
        "the row is kept (soft delete)"
    );
}

#[tokio::test]
async fn others_cannot_touch_a_deleted_listing() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let (_, bob, _) = session(&app, "bob").await;
    let lamp = app.create_listing(&alice, "Desk lamp", 1999, 3).await;
    delete(&app, &path(&lamp), Some(&alice)).await;

    // Act
    let reactivate = patch(&app, &path(&lamp), Some(&bob), json!({ "is_active": true })).await;

    // Assert
    assert_error(&reactivate, StatusCode::NOT_FOUND, "listing_not_found");
    assert_eq!(
        count(&app, "SELECT count(*) FROM listings WHERE is_active").await,
        0
    );
}

#[tokio::test]
async fn a_deleted_listing_is_reactivated_by_patching_is_active() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let lamp = app.create_listing(&alice, "Desk lamp", 1999, 3).await;
    delete(&app, &path(&lamp), Some(&alice)).await;

    // Act
    let resp = patch(
        &app,
        &path(&lamp),
        Some(&alice),
        json!({ "is_active": true }),
    )
    .await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
    assert_eq!(resp.body["is_active"], true);
    assert_eq!(app.get(&path(&lamp), None).await.status, StatusCode::OK);
    assert_eq!(
        item_ids(&app.get("/api/v1/listings", None).await),
        [id_of(&lamp)]
    );
    assert_eq!(
        count(
            &app,
            "SELECT count(*) FROM listings WHERE deleted_at IS NULL AND is_active"
        )
        .await,
        1
    );
}

#[tokio::test]
async fn lowering_quantity_below_the_reserved_units_is_a_409() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let lamp = app.create_listing(&alice, "Desk lamp", 1999, 5).await;
    let id: Uuid = id_of(&lamp).parse().unwrap();
    sqlx::query("UPDATE listings SET reserved = 3 WHERE id = $1")
        .bind(id)
        .execute(app.pool())
        .await
        .unwrap();

    // Act
    let below = patch(&app, &path(&lamp), Some(&alice), json!({ "quantity": 2 })).await;
    let equal = patch(&app, &path(&lamp), Some(&alice), json!({ "quantity": 3 })).await;

    // Assert
    assert_error(&below, StatusCode::CONFLICT, "quantity_below_reserved");
    assert_eq!(below.body["error"]["details"]["field"], "quantity");
    assert_eq!(equal.status, StatusCode::OK, "{}", equal.body);
    assert_eq!(equal.body["quantity"], 3);
    assert_eq!(equal.body["available"], 0);
    let (quantity, reserved): (i32, i32) =
        sqlx::query_as("SELECT quantity, reserved FROM listings WHERE id = $1")
            .bind(id)
            .fetch_one(app.pool())
            .await
            .unwrap();
    assert_eq!((quantity, reserved), (3, 3));
}

#[tokio::test]
async fn available_is_quantity_minus_reserved() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let lamp = app.create_listing(&alice, "Desk lamp", 1999, 5).await;
    sqlx::query("UPDATE listings SET reserved = 2")
        .execute(app.pool())
        .await
        .unwrap();

    // Act
    let one = app.get(&path(&lamp), None).await;
    let page = app.get("/api/v1/listings", None).await;

    // Assert
    assert_eq!(one.body["quantity"], 5);
    assert_eq!(one.body["available"], 3);
    assert_eq!(page.body["items"][0]["available"], 3);
}

// Search ----------------------------------------------------------------------------------------

async fn search(app: &TestApp, query: &str) -> Vec<String> {
    let resp = app.get(&format!("/api/v1/listings?{query}"), None).await;
    assert_eq!(resp.status, StatusCode::OK, "{query}: {}", resp.body);
    let mut titles: Vec<String> = resp.body["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["title"].as_str().unwrap().to_owned())
        .collect();
    titles.sort();
    titles
}

#[tokio::test]
async fn q_matches_title_description_and_seller_username_case_insensitively() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let (_, lampmaker, _) = session(&app, "LampMaker").await;
    app.create_listing(&alice, "Desk LAMP", 1000, 1).await;
    create(&app, Some(&alice), json!({ "title": "Reading light", "description": "a small lamp", "price_cents": 1000, "quantity": 1 })).await;
    app.create_listing(&lampmaker, "Oak table", 1000, 1).await;
    app.create_listing(&alice, "Chair", 1000, 1).await;

    // Act
    let lamp = search(&app, "q=lamp").await;
    let desk_lamp = search(&app, "q=lamp%20desk").await;
    let none = search(&app, "q=sofa").await;

    // Assert
    assert_eq!(lamp, ["Desk LAMP", "Oak table", "Reading light"]);
    assert_eq!(desk_lamp, ["Desk LAMP"], "every term must match");
    assert!(none.is_empty());
}

#[tokio::test]
async fn percent_and_underscore_in_q_match_literally() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    for title in ["50% off lamp", "500 lamps", "a_b chair", "axb chair"] {
        app.create_listing(&alice, title, 1000, 1).await;
    }

    // Act
    let percent = search(&app, &format!("q={}", encode("50%"))).await;
    let underscore = search(&app, &format!("q={}", encode("a_b"))).await;
    let lone_percent = search(&app, &format!("q={}", encode("%"))).await;

    // Assert
    assert_eq!(percent, ["50% off lamp"]);
    assert_eq!(underscore, ["a_b chair"]);
    assert_eq!(lone_percent, ["50% off lamp"]);
}

#[tokio::test]
async fn the_seller_filter_returns_only_that_sellers_listings() {
    // Arrange
    let app = TestApp::spawn().await;
    let (_, alice, _) = session(&app, "alice").await;
    let (_, bob, _) = session(&app, "bob").await;
    app.create_listing(&alice, "Lamp", 1000, 1).await;
    app.create_listing(&alice, "Chair", 1000, 1).await;
    app.create_listing(&bob, "Table", 1000, 1).await;

    // Act
    let alices = search(&app, "seller=Alice").await;
    let nobodys = search(&app, "seller=nobody").await;
    let combined = search(&app, "seller=alice&q=lamp").await;

    // Assert
    assert_eq!(alices, ["Chair", "Lamp"]);
    assert!(nobodys.is_empty());
    assert_eq!(combined, ["Lamp"]);
}

// Sorting and pagination ------------------------------------------------------------------------

/// Seven listings by two sellers with ties in both price and creation time. Returns
/// `(id, price, created_at micros)` per listing.
async fn seven_listings(app: &TestApp) -> Vec<(String, i64, i64)> {
    let (_, alice, _) = session(app, "alice").await;
    let (_, bob, _) = session(app, "bob").await;
    let prices = [300, 100, 300, 200, 100, 300, 500];
    // Minutes after a fixed instant; equal values are equal timestamps.
    let minutes = [5, 1, 3, 3, 7, 1, 3];
    let mut rows = Vec::new();
    for (i, (price, minute)) in prices.into_iter().zip(minutes).enumerate() {
        let token = if i % 2 == 0 { &alice } else { &bob };
        let listing = app
            .create_listing(token, &format!("Item {i}"), price, 1)
            .await;
        let id = id_of(&listing);
        let micros: i64 = sqlx::query_scalar(
            "UPDATE listings SET created_at = timestamptz '2026-01-01 00:00:00+00' + make_interval(mins => $2)
             WHERE id = $1
             RETURNING (extract(epoch FROM created_at) * 1000000)::bigint",
        )
        .bind(id.parse::<Uuid>().unwrap())
        .bind(minute)
        .fetch_one(app.pool())
        .await
        .unwrap();
        rows.push((id, price, micros));
    }
    rows
}

/// Ids in the order the API must return them: by key, ties broken by id (UUIDs compare like their
/// lowercase hex form), reversed for descending sorts.
fn expected_order(rows: &[(String, i64, i64)], sort: &str) -> Vec<String> {
    let mut sorted = rows.to_vec();
    match sort.trim_start_matches('-') {
        "price" => sorted.sort_by(|a, b| (a.1, &a.0).cmp(&(b.1, &b.0))),
        _ => sorted.sort_by(|a, b| (a.2, &a.0).cmp(&(b.2, &b.0))),
    }
    if sort.starts_with('-') {
        sorted.reverse();
    }
    sorted.into_iter().map(|r| r.0).collect()
}

/// Follows `next_cursor` from the first page to the last; returns every page's ids.
async fn all_pages(app: &TestApp, sort: &str, limit: i64) -> Vec<Vec<String>> {
    let mut pages = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut url = format!("/api/v1/listings?sort={sort}&limit={limit}");
        if let Some(c) = &cursor {
            url.push_str(&format!("&cursor={}", encode(c)));
        }
        let resp = app.get(&url, None).await;
        assert_eq!(resp.status, StatusCode::OK, "{url}: {}", resp.body);
        pages.push(item_ids(&resp));
        match resp.body["next_cursor"].as_str() {
            Some(next) => cursor = Some(next.to_owned()),
            None => {
                assert!(resp.body["next_cursor"].is_null(), "{}", resp.body);
                break;
            }
        }
        assert!(pages.len() <= 10, "pagination does not end");
    }
    pages
}

#[tokio::test]
async fn each_sort_returns_listings_in_the_right_order() {
    // Arrange
    let app = TestApp::spawn().await;
    let rows = seven_listings(&app).await;

    for sort in ["price", "-price", "created_at", "-created_at"] {
        // Act
        let resp = app
            .get(&format!("/api/v1/listings?sort={sort}"), None)
            .await;

        // Assert
        assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
        assert_eq!(item_ids(&resp), expected_order(&rows, sort), "sort {sort}");
        assert!(resp.body["next_cursor"].is_null());
    }
}

#[tokio::test]
async fn the_default_sort_is_newest_first() {
    // Arrange
    let app = TestApp::spawn().await;
    let rows = seven_listings(&app).await;

    // Act
    let resp = app.get("/api/v1/listings", None).await;

    // Assert
    assert_eq!(item_ids(&resp), expected_order(&rows, "-created_at"));
}

#[tokio::test]
async fn paging_by_two_returns_every_listing_exactly_once_in_order_for_every_sort() {
    // Arrange
    let app = TestApp::spawn().await;
    let rows = seven_listings(&app).await;

    for sort in ["price", "-price", "created_at", "-created_at"] {
        // Act
        let pages = all_pages(&app, sort, 2).await;

        // Assert
        let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
        assert_eq!(sizes, [2, 2, 2, 1], "sort {sort}");
        let seen: Vec<String> = pages.concat();
        assert_eq!(
            seen.iter().collect::<HashSet<_>>().len(),
            7,
            "duplicates with sort {sort}"
        );
        assert_eq!(seen, expected_order(&rows, sort), "sort {sort}");
    }
}

#[tokio::test]
async fn an_exactly_full_last_page_has_a_null_cursor_after_it() {
    // Arrange
    let app = TestApp::spawn().await;
    let rows = seven_listings(&app).await;
    sqlx::query("DELETE FROM listings WHERE id = $1")
        .bind(rows[0].0.parse::<Uuid>().unwrap())
        .execute(app.pool())
        .await
        .unwrap();

    // Act
    let pages = all_pages(&app, "price", 2).await;

    // Assert
    assert_eq!(pages.iter().map(Vec::len).collect::<Vec<_>>(), [2, 2, 2]);
    assert_eq!(pages.concat(), expected_order(&rows[1..], "price"));
}

#[tokio::test]
async fn a_limit_outside_1_to_100_is_a_422() {
    // Arrange
    let app = TestApp::spawn().await;

    for limit in [0, 101, -1] {
        // Act
        let resp = app
            .get(&format!("/api/v1/listings?limit={limit}"), None)
            .await;

        // Assert
        assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
        assert_eq!(invalid_fields(&resp), ["limit"], "limit {limit}");
    }
}

#[tokio::test]
async fn a_limit_of_100_is_accepted() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/listings?limit=100", None).await;

    // Assert
    assert_eq!(resp.status, StatusCode::OK, "{}", resp.body);
}

#[tokio::test]
async fn a_forged_truncated_or_foreign_cursor_is_a_400_invalid_cursor() {
    // Arrange
    let app = TestApp::spawn().await;
    seven_listings(&app).await;
    let page = app.get("/api/v1/listings?sort=price&limit=2", None).await;
    let price_cursor = page.body["next_cursor"].as_str().unwrap().to_owned();
    let b64 =
        |raw: &str| base64::Engine::encode(&base64::engine::general_purpose::URL_SAFE_NO_PAD, raw);
    let id = uuid::Uuid::now_v7();

    for query in [
        "cursor=garbage".to_owned(),
        "cursor=".to_owned(),
        format!("cursor={}", encode("!!not base64!!")),
        format!("sort=created_at&cursor={price_cursor}"),
        format!(
            "sort=price&cursor={}",
            &price_cursor[..price_cursor.len() - 4]
        ),
        // A creation time PostgreSQL cannot even represent.
        format!("cursor={}", b64(&format!("c:-300000000000000000:{id}"))),
        format!("sort=price&cursor={}", b64(&format!("p:-1:{id}"))),
        format!("cursor={}", "A".repeat(4_000)),
    ] {
        // Act
        let resp = app.get(&format!("/api/v1/listings?{query}"), None).await;

        // Assert
        assert_error(&resp, StatusCode::BAD_REQUEST, "invalid_cursor");
        assert!(
            !resp.body.to_string().contains("timestamp"),
            "{query}: {}",
            resp.body
        );
    }
}

#[tokio::test]
async fn an_unknown_sort_is_a_422() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/listings?sort=title", None).await;

    // Assert
    assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
    assert_eq!(invalid_fields(&resp), ["sort"]);
}

#[tokio::test]
async fn an_invalid_token_on_the_public_search_is_a_401_not_anonymous() {
    // Arrange
    let app = TestApp::spawn().await;

    // Act
    let resp = app.get("/api/v1/listings", Some("not-a-jwt")).await;

    // Assert
    assert_error(&resp, StatusCode::UNAUTHORIZED, "unauthorized");
}
