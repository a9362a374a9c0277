//! One rule for text: NUL and other control characters in any text the API takes (bodies, query
//! and path parameters) are a 422 naming the field, never a 500, and nothing is written; usernames
//! and emails are compared in Unicode NFC.

use poem::http::StatusCode;
use serde_json::json;
use test_support::TestApp;

use crate::helpers::{PASSWORD, assert_error, count, encode, invalid_fields, patch, session};

const NUL: &str = "a\u{0}b";
const ESC: &str = "\u{1b}[31mred";

#[tokio::test]
async fn control_characters_in_any_text_field_are_a_422_naming_it_and_write_nothing() {
    let app = TestApp::spawn().await;
    let (_, token, _) = session(&app, "alice").await;

    for bad in [NUL, ESC] {
        let cases = [
            (
                "/api/v1/auth/register",
                None,
                json!({ "username": "bob", "email": format!("b{bad}@example.com"), "password": PASSWORD }),
                "email",
            ),
            (
                "/api/v1/auth/register",
                None,
                json!({ "username": format!("b{bad}ob"), "email": "bob@example.com", "password": PASSWORD }),
                "username",
            ),
            (
                "/api/v1/auth/token",
                None,
                json!({ "username": format!("ali{bad}ce"), "password": PASSWORD }),
                "username",
            ),
            (
                "/api/v1/listings",
                Some(token.as_str()),
                json!({ "title": format!("Lamp {bad}"), "price_cents": 100, "quantity": 1 }),
                "title",
            ),
            (
                "/api/v1/listings",
                Some(token.as_str()),
                json!({ "title": "Lamp", "description": bad, "price_cents": 100, "quantity": 1 }),
                "description",
            ),
        ];
        for (path, auth, body, field) in cases {
            let resp = app.post(path, auth, body.clone()).await;
            assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(invalid_fields(&resp), [field], "{path} {body}");
        }
        for (field, value) in [("display_name", bad), ("bio", bad), ("email", NUL)] {
            let resp = patch(
                &app,
                "/api/v1/users/me",
                Some(&token),
                json!({ field: value }),
            )
            .await;
            assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(invalid_fields(&resp), [field]);
        }
        for (param, path) in [
            ("q", format!("/api/v1/listings?q={}", encode(bad))),
            ("seller", format!("/api/v1/listings?seller={}", encode(bad))),
            ("username", format!("/api/v1/users/{}", encode(bad))),
        ] {
            let resp = app.get(&path, None).await;
            assert_error(&resp, StatusCode::UNPROCESSABLE_ENTITY, "validation_failed");
            assert_eq!(invalid_fields(&resp), [param], "{path}");
        }
    }
    assert_eq!(count(&app, "SELECT count(*) FROM users").await, 1);
    assert_eq!(count(&app, "SELECT count(*) FROM listings").await, 0);
    // Multi-line fields keep their line breaks; one-line fields do not take them.
    let ok = patch(
        &app,
        "/api/v1/users/me",
        Some(&token),
        json!({ "bio": "line one\nline two\ttab" }),
    )
    .await;
    assert_eq!(ok.status, StatusCode::OK, "{}", ok.body);
    let title = app
        .post(
            "/api/v1/listings",
            Some(&token),
            json!({ "title": "two\nlines", "price_cents": 100, "quantity": 1 }),
        )
        .await;
    assert_eq!(invalid_fields(&title), ["title"]);
}

#[tokio::test]
async fn usernames_are_ascii_so_look_alikes_cannot_impersonate() {
    let app = TestApp::spawn().await;
    for name in ["p\u{430}ypal", "Jos\u{e9}", "Jose\u{301}"] {
        let resp = app
            .post(
                "/api/v1/auth/register",
                None,
                json!({ "username": name, "email": "x@example.com", "password": PASSWORD }),
            )
            .await;
        assert_eq!(resp.status, StatusCode::UNPROCESSABLE_ENTITY, "{name:?}");
        assert_eq!(invalid_fields(&resp), ["username"]);
    }
}

#[tokio::test]
async fn an_email_spelled_in_another_unicode_form_is_the_same_address() {
    let app = TestApp::spawn().await;
    let composed = "jos\u{e9}@example.com";
    let decomposed = "jose\u{301}@example.com";
    let first = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "jose", "email": composed, "password": PASSWORD }),
        )
        .await;
    assert_eq!(first.status, StatusCode::CREATED, "{}", first.body);

    let twin = app
        .post(
            "/api/v1/auth/register",
            None,
            json!({ "username": "jose2", "email": decomposed, "password": PASSWORD }),
        )
        .await;
    let login = app.login(decomposed, PASSWORD).await;

    assert_eq!(twin.status, StatusCode::CONFLICT, "{}", twin.body);
    assert_eq!(twin.body["error"]["code"], "email_taken");
    assert_eq!(login.status, StatusCode::OK, "{}", login.body);
    assert_eq!(first.body["email"], composed);
}
