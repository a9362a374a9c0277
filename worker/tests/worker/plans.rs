//! The worker's hot-path statements run on connections that plan them once
//! (`DATABASE_GENERIC_PLANS`), by index lookups only, and only those: every other statement
//! keeps PostgreSQL's choice.

use worker::JobContext;

use crate::helpers::{settings, unique_prefix};

async fn plan_cache_mode(pool: &sqlx::PgPool) -> String {
    setting(pool, "plan_cache_mode").await
}

async fn setting(pool: &sqlx::PgPool, name: &str) -> String {
    sqlx::query_scalar("SELECT current_setting($1)")
        .bind(name)
        .fetch_one(pool)
        .await
        .expect("PostgreSQL answers")
}

/// Every node of the plan of a cart's lines joined to their listings (the join the admission
/// read makes), as "node type" or "node type on relation", outermost first. The tables are
/// temporary ones of the same shape whose statistics make a hash join over the whole catalogue
/// look cheapest to a plan made without the values: a thousand listings, carts of fifty lines.
async fn cart_join_plan(pool: &sqlx::PgPool) -> Vec<String> {
    let mut conn = pool.acquire().await.expect("connection");
    for statement in [
        "CREATE TEMP TABLE catalogue (id uuid PRIMARY KEY, price_cents bigint NOT NULL)",
        "CREATE TEMP TABLE cart (user_id uuid, listing_id uuid, PRIMARY KEY (user_id, listing_id))",
        "INSERT INTO catalogue SELECT gen_random_uuid(), 100 FROM generate_series(1, 1000)",
        "INSERT INTO cart SELECT u.id, c.id
         FROM (SELECT gen_random_uuid() AS id FROM generate_series(1, 20)) u
         CROSS JOIN (SELECT id FROM catalogue LIMIT 50) c",
        "ANALYZE catalogue",
        "ANALYZE cart",
        "PREPARE cart_listings(uuid) AS
         SELECT l.price_cents FROM cart c JOIN catalogue l ON l.id = c.listing_id
         WHERE c.user_id = $1",
    ] {
        sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .expect("prepared");
    }
    let plan: serde_json::Value =
        sqlx::query_scalar("EXPLAIN (FORMAT JSON) EXECUTE cart_listings(gen_random_uuid())")
            .fetch_one(&mut *conn)
            .await
            .expect("explained");
    for statement in ["DEALLOCATE cart_listings", "DROP TABLE cart, catalogue"] {
        sqlx::query(statement)
            .execute(&mut *conn)
            .await
            .expect("cleaned up");
    }
    let mut nodes = Vec::new();
    let mut pending = vec![&plan[0]["Plan"]];
    while let Some(node) = pending.pop() {
        let kind = node["Node Type"].as_str().unwrap_or_default();
        nodes.push(match node["Relation Name"].as_str() {
            Some(table) => format!("{kind} on {table}"),
            None => kind.to_owned(),
        });
        if let Some(children) = node["Plans"].as_array() {
            pending.extend(children.iter().rev());
        }
    }
    nodes
}

#[tokio::test]
async fn the_hot_path_pool_plans_once_and_the_general_pool_leaves_the_choice_to_postgres() {
    let ctx = JobContext::connect(settings(
        &unique_prefix(),
        &[("DATABASE_GENERIC_PLANS", "true")],
    ))
    .await
    .expect("Postgres and Redis are up");
    assert_eq!(plan_cache_mode(&ctx.hot_pool).await, "force_generic_plan");
    assert_eq!(plan_cache_mode(&ctx.pool).await, "auto");
    for (name, hot) in [
        ("enable_seqscan", "off"),
        ("enable_hashjoin", "off"),
        ("enable_mergejoin", "off"),
    ] {
        assert_eq!(setting(&ctx.hot_pool, name).await, hot, "{name}");
        assert_eq!(setting(&ctx.pool, name).await, "on", "{name}");
    }
    let plan = cart_join_plan(&ctx.hot_pool).await;
    assert!(
        plan.iter().any(|n| n == "Index Scan on catalogue")
            && !plan
                .iter()
                .any(|n| n.starts_with("Seq Scan") || n.ends_with("Join")),
        "a cart's listings are looked up by their key, whatever the statistics: {plan:?}"
    );
    // The flows take the hot pool for their hot statements and the general one for the rest.
    let (checkout, payment) = (ctx.checkout(), ctx.payment());
    assert_eq!(
        plan_cache_mode(&checkout.hot_pool).await,
        "force_generic_plan"
    );
    assert_eq!(plan_cache_mode(&checkout.pool).await, "auto");
    assert_eq!(
        plan_cache_mode(&payment.hot_pool).await,
        "force_generic_plan"
    );
    assert_eq!(plan_cache_mode(&payment.pool).await, "auto");
    assert_eq!(plan_cache_mode(&ctx.sweeps().pool).await, "auto");
    // Two pools: closing the general one leaves the hot one open.
    ctx.pool.close().await;
    assert!(!ctx.hot_pool.is_closed());
}

#[tokio::test]
async fn with_generic_plans_off_everything_runs_on_the_one_pool() {
    let ctx = JobContext::connect(settings(
        &unique_prefix(),
        &[("DATABASE_GENERIC_PLANS", "false")],
    ))
    .await
    .expect("Postgres and Redis are up");
    assert_eq!(plan_cache_mode(&ctx.hot_pool).await, "auto");
    // One pool: closing it closes the hot path's too.
    ctx.pool.close().await;
    assert!(ctx.hot_pool.is_closed());
}
