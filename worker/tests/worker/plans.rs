//! The worker's hot-path statements run on connections that plan them once
//! (`DATABASE_GENERIC_PLANS`), and only those: every other statement keeps PostgreSQL's choice.

use worker::JobContext;

use crate::helpers::{settings, unique_prefix};

async fn plan_cache_mode(pool: &sqlx::PgPool) -> String {
    sqlx::query_scalar("SHOW plan_cache_mode")
        .fetch_one(pool)
        .await
        .expect("PostgreSQL answers")
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
