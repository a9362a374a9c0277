//! The sweeps that delete, run inline against a private database and Redis prefix:
//! purge_inactive keeps order snapshots, prune_jobs deletes only what is finished and past
//! retention.

use serde_json::json;
use shared::{jobs, sweep};
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
    let config = queue_config(&app, jobs::CHECKOUT);
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
