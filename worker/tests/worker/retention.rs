//! The sweeps that delete, run inline against a private database and Redis prefix:
//! purge_inactive keeps order snapshots, prune_jobs deletes only what is finished and past
//! retention, prune_sessions only sessions dead for longer than theirs.

use serde_json::json;
use shared::{
    jobs::{self, Job, PruneSessions},
    queue::TickTask,
    sweep,
};
use test_support::TestApp;
use uuid::Uuid;

use crate::{
    fleet::ready_buyer,
    sweeps::{deps, queue_config},
};

#[tokio::test]
async fn purge_inactive_deletes_long_deleted_accounts_and_listings_but_orders_keep_their_snapshots()
{
    // Arrange: an order (cancelled, so nothing is reserved), then seller and buyer delete their
    // accounts more than 30 days ago; another user deleted theirs 10 days ago.
    let app = TestApp::spawn().await;
    let (token, address, _) = ready_buyer(&app).await;
    let resp = app.checkout(&token, &address, "k-1").await;
    assert_eq!(resp.status.as_u16(), 202, "{}", resp.body);
    app.run_checkout_jobs().await;
    let order: Uuid = sqlx::query_scalar("SELECT id FROM orders")
        .fetch_one(app.pool())
        .await
        .unwrap();
    let cancel = app
        .post(
            &format!("/api/v1/orders/{order}/cancel"),
            Some(&token),
            json!({}),
        )
        .await;
    assert!(cancel.status.is_success(), "{}", cancel.body);
    let (_, recent) = app.signed_up("recent").await;
    let seller_login = app.login("seller", "correct horse").await;
    let seller_token = seller_login.body["access_token"]
        .as_str()
        .expect("token")
        .to_owned();
    for token in [&token, &seller_token, &recent] {
        let resp = app
            .request("DELETE", "/api/v1/users/me", Some(token), None)
            .await;
        assert!(resp.status.is_success(), "{}", resp.body);
    }
    for (table, days) in [("users", 31), ("listings", 31)] {
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "UPDATE {table} SET deleted_at = now() - make_interval(days => {days})"
        )))
        .execute(app.pool())
        .await
        .expect("backdate deletion");
    }
    sqlx::query(
        "UPDATE users SET deleted_at = now() - interval '10 days' WHERE username = 'recent'",
    )
    .execute(app.pool())
    .await
    .expect("backdate");

    // Act
    let report = sweep::purge_inactive(&deps(&app)).await.expect("purge");

    // Assert: both long-deleted users and the listing are gone, with what was only theirs.
    assert_eq!((report.users, report.listings), (2, 1));
    for (sql, expected) in [
        ("SELECT count(*) FROM users", 1),
        ("SELECT count(*) FROM listings", 0),
        ("SELECT count(*) FROM addresses", 0),
        // Only the recently deleted user's sessions are left.
        ("SELECT count(*) FROM refresh_token_families", 1),
    ] {
        let n: i64 = sqlx::query_scalar(sql)
            .fetch_one(app.pool())
            .await
            .expect(sql);
        assert_eq!(n, expected, "{sql}");
    }
    // The order keeps its snapshot; only the links to the purged rows are gone.
    let (buyer_id, buyer_name, address): (Option<Uuid>, String, serde_json::Value) =
        sqlx::query_as("SELECT buyer_id, buyer_username, shipping_address FROM orders")
            .fetch_one(app.pool())
            .await
            .expect("order kept");
    assert_eq!((buyer_id, buyer_name.as_str()), (None, "buyer"));
    assert!(address["line1"].is_string(), "{address}");
    let line: (Option<Uuid>, Option<Uuid>, String, String, i64) = sqlx::query_as(
        "SELECT listing_id, seller_id, seller_username, title, unit_price_cents FROM order_lines",
    )
    .fetch_one(app.pool())
    .await
    .expect("line kept");
    assert_eq!(line, (None, None, "seller".into(), "Lamp".into(), 2_500));
}

#[tokio::test]
async fn prune_jobs_deletes_only_finished_work_past_retention() {
    // Arrange: job rows finished 15 days ago, finished today, and queued 15 days ago.
    let app = TestApp::spawn().await;
    app.allow_queued_jobs("the old queued row is one pruning must keep");
    let mut ids = Vec::new();
    for (status, finished_days_ago) in [
        ("succeeded", Some(15)),
        ("failed", Some(0)),
        ("queued", None),
    ] {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO jobs (id, kind, status, finished_at, created_at)
             VALUES ($1, 'checkout', $2, now() - make_interval(days => $3), now() - interval '15 days')",
        )
        .bind(id)
        .bind(status)
        .bind(finished_days_ago.unwrap_or(0))
        .execute(app.pool())
        .await
        .expect("insert job");
        if finished_days_ago.is_none() {
            sqlx::query("UPDATE jobs SET finished_at = NULL WHERE id = $1")
                .bind(id)
                .execute(app.pool())
                .await
                .expect("unfinish");
        }
        ids.push(id);
    }
    // Tasks in Redis: done 2 days ago, dead 2 days ago, done an hour ago, and one waiting for a
    // retry (in no finished set) that finished an attempt 2 days ago.
    let config = queue_config(&app, jobs::Checkout::NAME);
    let now = chrono::Utc::now().timestamp();
    let tasks = [
        ("old-done", Some(config.done_jobs_set()), now - 2 * 86_400),
        ("old-dead", Some(config.dead_jobs_set()), now - 2 * 86_400),
        ("new-done", Some(config.done_jobs_set()), now - 3_600),
        ("retrying", None, now - 2 * 86_400),
    ];
    let mut redis = app.redis.clone();
    for (id, set, done_at) in &tasks {
        let mut pipe = redis::pipe();
        pipe.hset(config.job_data_hash(), id, "{}").ignore();
        pipe.hset(
            format!("{}:{id}", config.job_meta_hash()),
            "done_at",
            done_at,
        )
        .ignore();
        if let Some(set) = set {
            pipe.sadd(set, id).ignore();
        }
        pipe.query_async::<()>(&mut redis).await.expect("seed task");
    }

    // Act
    let report = sweep::prune_jobs(&deps(&app)).await.expect("prune");

    // Assert
    assert_eq!((report.job_rows, report.queue_tasks), (1, 2));
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM jobs ORDER BY id")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(left, ids[1..].to_vec());
    let data: Vec<String> = redis::cmd("HKEYS")
        .arg(config.job_data_hash())
        .query_async(&mut redis)
        .await
        .unwrap();
    let mut data = data;
    data.sort();
    assert_eq!(data, ["new-done", "retrying"]);
    let meta_left: bool = redis::cmd("EXISTS")
        .arg(format!("{}:old-done", config.job_meta_hash()))
        .query_async(&mut redis)
        .await
        .unwrap();
    assert!(!meta_left);
}

#[tokio::test]
async fn prune_sessions_deletes_only_sessions_dead_for_longer_than_the_retention() {
    // Arrange: besides the login of the sign-up, sessions of every kind, by age in days
    // (created, revoked, newest token expires: negative = in the past). Retention is 7 days.
    let app = TestApp::spawn().await;
    let (user_id, _) = app.signed_up("ann").await;
    let user: Uuid = user_id.parse().expect("uuid");
    let cases: [(&str, i64, Option<i64>, Option<i64>); 6] = [
        ("live", 30, None, Some(20)),
        ("expired_long_ago", 60, None, Some(-10)),
        ("revoked_long_ago", 30, Some(10), Some(20)),
        ("revoked_recently", 30, Some(2), Some(20)),
        ("expired_recently", 30, None, Some(-2)),
        ("young_without_a_token", 1, None, None),
    ];
    let mut family = std::collections::HashMap::new();
    for (name, created, revoked, expires) in cases {
        let id = Uuid::now_v7();
        sqlx::query(
            "INSERT INTO refresh_token_families (id, user_id, created_at, revoked_at)
             VALUES ($1, $2, now() - make_interval(days => $3),
                     now() - make_interval(days => $4::int))",
        )
        .bind(id)
        .bind(user)
        .bind(created as i32)
        .bind(revoked.map(|d| d as i32))
        .execute(app.pool())
        .await
        .expect("insert family");
        if let Some(expires) = expires {
            sqlx::query(
                "INSERT INTO refresh_tokens (id, family_id, token_hash, expires_at)
                 VALUES ($1, $2, $3, now() + make_interval(days => $4))",
            )
            .bind(Uuid::now_v7())
            .bind(id)
            .bind(id.as_bytes().to_vec())
            .bind(expires as i32)
            .execute(app.pool())
            .await
            .expect("insert token");
        }
        family.insert(name, id);
    }
    let families_before: i64 = sqlx::query_scalar("SELECT count(*) FROM refresh_token_families")
        .fetch_one(app.pool())
        .await
        .unwrap();

    // Act: one run, as the worker runs a tick, and a second one.
    let tick = TickTask { scheduled_at: 0 };
    let report = PruneSessions::run(&app.state.services, tick)
        .await
        .expect("run");
    let again = PruneSessions::run(&app.state.services, tick)
        .await
        .expect("run");

    // Assert
    assert_eq!(report.families, 2, "{report:?}");
    assert_eq!(again.families, 0, "a second run finds nothing more");
    let left: Vec<Uuid> = sqlx::query_scalar("SELECT id FROM refresh_token_families")
        .fetch_all(app.pool())
        .await
        .unwrap();
    assert_eq!(left.len() as i64, families_before - 2);
    for gone in ["expired_long_ago", "revoked_long_ago"] {
        assert!(!left.contains(&family[gone]), "{gone} is deleted");
        let tokens: i64 =
            sqlx::query_scalar("SELECT count(*) FROM refresh_tokens WHERE family_id = $1")
                .bind(family[gone])
                .fetch_one(app.pool())
                .await
                .unwrap();
        assert_eq!(tokens, 0, "the tokens of {gone} went with it");
    }
    for kept in [
        "live",
        "revoked_recently",
        "expired_recently",
        "young_without_a_token",
    ] {
        assert!(left.contains(&family[kept]), "{kept} is kept");
    }
    // The sign-up's own session still works.
    let login = app.login("ann", "correct horse").await;
    assert_eq!(login.status.as_u16(), 200, "{}", login.body);
}
