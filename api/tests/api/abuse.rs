//! Abuse limits that hold under concurrency and behind proxies: password guesses are counted
//! before they are verified, an attacker's address cannot lock the owner out, `X-Forwarded-For`
//! counts only from trusted proxies, and sign-ups, refreshes and password changes are limited
//! per address with `Retry-After`.

use std::sync::Arc;

use futures::future::join_all;
use poem::http::StatusCode;
use serde_json::json;
use test_support::{TestApp, TestResponse};

use crate::helpers::{PASSWORD, assert_error};

const ATTACKER: &str = "198.51.100.66:40000";
const OWNER: &str = "203.0.113.10:50000";

async fn login_from(app: &TestApp, peer: &str, login: &str, password: &str) -> TestResponse {
    login_via(app, peer, &[], login, password).await
}

async fn login_via(
    app: &TestApp,
    peer: &str,
    headers: &[(&str, &str)],
    login: &str,
    password: &str,
) -> TestResponse {
    let body = json!({ "username": login, "password": password });
    app.request_from(peer, "POST", "/api/v1/auth/token", headers, Some(body))
        .await
}

fn retry_after(resp: &TestResponse) -> u64 {
    resp.headers["retry-after"]
        .to_str()
        .expect("ascii")
        .parse()
        .expect("seconds")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn thirty_parallel_wrong_guesses_get_at_most_the_limit_of_verifications() {
    let app = Arc::new(TestApp::spawn().await);
    app.register("alice").await;
    let limit = app.settings.auth.login_max_failures_per_account_and_ip;
    assert_eq!(limit, 5, "the default");

    let answers = join_all((0..30).map(|i| {
        let app = Arc::clone(&app);
        tokio::spawn(
            async move { login_from(&app, ATTACKER, "alice", &format!("guess {i}")).await },
        )
    }))
    .await;

    let statuses: Vec<StatusCode> = answers.iter().map(|a| a.as_ref().unwrap().status).collect();
    let verified = statuses
        .iter()
        .filter(|s| **s == StatusCode::UNAUTHORIZED)
        .count();
    let refused = statuses
        .iter()
        .filter(|s| **s == StatusCode::TOO_MANY_REQUESTS)
        .count();
    assert_eq!((verified, refused), (5, 25), "{statuses:?}");
    for answer in answers.iter().map(|a| a.as_ref().unwrap()) {
        if answer.status == StatusCode::TOO_MANY_REQUESTS {
            assert!(retry_after(answer) > 0);
        }
    }
}

#[tokio::test]
async fn an_attacker_on_one_address_cannot_lock_the_owner_out_on_another() {
    let app = TestApp::spawn().await;
    app.register("alice").await;
    for _ in 0..10 {
        login_from(&app, ATTACKER, "alice", "wrong password").await;
    }

    let attacker = login_from(&app, ATTACKER, "alice", PASSWORD).await;
    let owner = login_from(&app, OWNER, "alice", PASSWORD).await;

    assert_error(
        &attacker,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
}

#[tokio::test]
async fn guesses_spread_over_many_addresses_get_one_each_past_the_account_limit() {
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures_per_account = 3).await;
    app.register("alice").await;
    for n in 1..=3 {
        let resp = login_from(&app, &format!("192.0.2.{n}:1000"), "alice", "wrong").await;
        assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_credentials");
    }

    // Past the account-wide limit an address that failed before is refused, a fresh one gets
    // its one guess, and the owner from a fresh address gets in.
    let again = login_from(&app, "192.0.2.1:1000", "alice", "wrong").await;
    let fresh = login_from(&app, "192.0.2.9:1000", "alice", "wrong").await;
    let fresh_again = login_from(&app, "192.0.2.9:1000", "alice", "wrong").await;
    let owner = login_from(&app, OWNER, "alice", PASSWORD).await;

    assert_error(&again, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert_error(&fresh, StatusCode::UNAUTHORIZED, "invalid_credentials");
    assert_error(
        &fresh_again,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);
}

#[tokio::test]
async fn one_address_guessing_many_accounts_is_stopped() {
    let app = TestApp::spawn_with(|s| s.auth.login_max_failures_per_ip = 4).await;
    for name in ["acct1", "acct2", "acct3", "acct4", "acct5"] {
        app.register(name).await;
    }
    for name in ["acct1", "acct2", "acct3", "acct4"] {
        login_from(&app, ATTACKER, name, "wrong").await;
    }

    let fifth = login_from(&app, ATTACKER, "acct5", PASSWORD).await;
    let elsewhere = login_from(&app, OWNER, "acct5", PASSWORD).await;

    assert_error(&fifth, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert_eq!(elsewhere.status, StatusCode::OK);
}

#[tokio::test]
async fn forwarded_for_names_the_client_only_behind_a_trusted_proxy() {
    let app = TestApp::spawn_with(|s| {
        s.auth.login_max_failures_per_account_and_ip = 2;
        s.auth.trusted_proxies = shared::auth::TrustedProxies::parse("10.0.0.0/8").unwrap();
    })
    .await;
    app.register("alice").await;
    let proxy = "10.0.0.5:443";
    let attacker_via_proxy = [("x-forwarded-for", "198.51.100.66")];
    let owner_via_proxy = [("x-forwarded-for", "203.0.113.10")];
    for _ in 0..2 {
        login_via(&app, proxy, &attacker_via_proxy, "alice", "wrong").await;
    }

    // Behind the balancer, the attacker's failures are the attacker's, not everyone's.
    let attacker = login_via(&app, proxy, &attacker_via_proxy, "alice", PASSWORD).await;
    let owner = login_via(&app, proxy, &owner_via_proxy, "alice", PASSWORD).await;
    assert_error(
        &attacker,
        StatusCode::TOO_MANY_REQUESTS,
        "too_many_attempts",
    );
    assert_eq!(owner.status, StatusCode::OK, "{}", owner.body);

    // A client that is not a trusted proxy cannot pick its address by sending the header.
    let direct = "192.0.2.77:5555";
    let spoofed = [("x-forwarded-for", "203.0.113.10")];
    for _ in 0..2 {
        login_via(&app, direct, &spoofed, "alice", "wrong").await;
    }
    let spoofer = login_via(&app, direct, &spoofed, "alice", PASSWORD).await;
    let owner_again = login_via(&app, proxy, &owner_via_proxy, "alice", PASSWORD).await;
    assert_error(&spoofer, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert_eq!(owner_again.status, StatusCode::OK, "{}", owner_again.body);
}

#[tokio::test]
async fn sign_ups_refreshes_and_password_changes_are_limited_per_address() {
    let app = TestApp::spawn_with(|s| {
        s.auth.register_max_per_ip = 2;
        s.auth.refresh_max_per_ip = 1;
        s.auth.password_change_max_per_ip = 1;
    })
    .await;
    let register = |name: &str, peer: &'static str| {
        let body = json!({
            "username": name, "email": format!("{name}@example.com"), "password": PASSWORD
        });
        app.request_from(peer, "POST", "/api/v1/auth/register", &[], Some(body))
    };
    assert_eq!(
        register("user1", ATTACKER).await.status,
        StatusCode::CREATED
    );
    assert_eq!(
        register("user2", ATTACKER).await.status,
        StatusCode::CREATED
    );
    let third = register("user3", ATTACKER).await;
    assert_error(&third, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
    assert!(retry_after(&third) > 0 && retry_after(&third) <= 900);
    assert_eq!(register("user4", OWNER).await.status, StatusCode::CREATED);

    let tokens = login_from(&app, OWNER, "user4", PASSWORD).await;
    let (_, refresh) = crate::helpers::tokens_of(&tokens);
    let body = json!({ "refresh_token": refresh });
    let first = app
        .request_from(
            OWNER,
            "POST",
            "/api/v1/auth/refresh",
            &[],
            Some(body.clone()),
        )
        .await;
    assert_eq!(first.status, StatusCode::OK, "{}", first.body);
    let second = app
        .request_from(OWNER, "POST", "/api/v1/auth/refresh", &[], Some(body))
        .await;
    assert_error(&second, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");

    let (access, _) = crate::helpers::tokens_of(&first);
    let bearer = format!("Bearer {access}");
    let change = json!({ "current_password": "not it", "new_password": "another horse" });
    let auth = [("authorization", bearer.as_str())];
    let tried = app
        .request_from(
            OWNER,
            "POST",
            "/api/v1/users/me/password",
            &auth,
            Some(change.clone()),
        )
        .await;
    assert_eq!(
        tried.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{}",
        tried.body
    );
    let again = app
        .request_from(
            OWNER,
            "POST",
            "/api/v1/users/me/password",
            &auth,
            Some(change),
        )
        .await;
    assert_error(&again, StatusCode::TOO_MANY_REQUESTS, "too_many_attempts");
}

#[tokio::test]
async fn a_login_name_longer_than_any_account_is_refused_without_a_lookup_or_a_counter() {
    let app = TestApp::spawn().await;
    let huge = "x".repeat(10_000);

    let resp = login_from(&app, ATTACKER, &huge, "whatever").await;

    assert_error(&resp, StatusCode::UNAUTHORIZED, "invalid_credentials");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{}:login:*", app.settings.redis_prefix))
        .query_async(&mut app.redis.clone())
        .await
        .unwrap();
    assert!(keys.is_empty(), "{keys:?}");
}
