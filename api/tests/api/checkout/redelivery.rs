//! A job delivered more than once: redelivery, a dead worker's lease (expired or live), and the
//! attempts cap.

use serde_json::json;
use shared::{
    checkout::{self, ProcessOutcome},
    db::{self, jobs::Claim},
};
use test_support::{
    TestApp,
    stripe::{
        CreateIntent, field, form, header, requests_to, stripe_app, stripe_error, stripe_fake,
    },
};
use wiremock::{
    Mock, MockServer,
    matchers::{method, path},
};

use super::{accepted_job, job_row, listing, mark_running, order_of_job, orders};

// ---------------------------------------------------------------------------------------------
// 4. Redelivery.

#[tokio::test]
async fn a_redelivered_job_is_skipped_and_creates_one_payment_intent() {
    let (server, _) = stripe_fake().await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Kettle", 3_100, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();

    let first = checkout::process(&deps, job_id).await.expect("first run");
    let second = checkout::process(&deps, job_id).await.expect("second run");

    let ProcessOutcome::Succeeded { order_id } = first else {
        panic!("first delivery: {first:?}");
    };
    assert_eq!(second, ProcessOutcome::Skipped);
    assert_eq!(orders(&app).await, 1);
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 1, "exactly one PaymentIntent request");
    assert_eq!(
        header(&creates[0], "idempotency-key"),
        Some(format!("order-{order_id}-pi").as_str())
    );
    let fields = form(&creates[0]);
    assert_eq!(field(&fields, "amount"), Some("6200"));
    assert_eq!(field(&fields, "currency"), Some("usd"));
    assert_eq!(
        field(&fields, "metadata[order_id]"),
        Some(order_id.to_string().as_str())
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "succeeded");
    assert_eq!(
        job.attempts, 1,
        "the skipped delivery did not count an attempt"
    );
    assert_eq!(app.stock(&l).await, (5, 2));
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_simultaneous_deliveries_of_one_job_create_one_order() {
    let (server, _) = stripe_fake().await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Kettle", 3_100, 5).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();

    let (a, b) = tokio::join!(
        tokio::spawn({
            let deps = deps.clone();
            async move { checkout::process(&deps, job_id).await }
        }),
        tokio::spawn({
            let deps = deps.clone();
            async move { checkout::process(&deps, job_id).await }
        }),
    );
    let mut outcomes = vec![a.unwrap(), b.unwrap()];
    outcomes.sort_by_key(|o| !matches!(o, Ok(ProcessOutcome::Succeeded { .. })));

    // The loser finds the job finished (skipped) or still claimed by the winner (busy: apalis
    // delivers it again later, and then it finds the job finished).
    assert!(
        matches!(
            outcomes.as_slice(),
            [
                Ok(ProcessOutcome::Succeeded { .. }),
                Ok(ProcessOutcome::Skipped) | Err(checkout::ProcessError::Busy)
            ]
        ),
        "{outcomes:?}"
    );
    assert_eq!(orders(&app).await, 1);
    assert_eq!(
        requests_to(&server, "POST", "/v1/payment_intents")
            .await
            .len(),
        1
    );
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 6. Leases.

#[tokio::test]
async fn a_job_whose_worker_died_is_claimed_again_after_its_lease_expires() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Chair", 4_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    mark_running(&app, job_id, -60.0).await;
    assert!(
        app.run_checkout_jobs().await.is_empty(),
        "not queued any more"
    );

    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("run");

    assert!(
        matches!(outcome, ProcessOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "succeeded");
    assert_eq!(job.attempts, 2);
    assert_eq!(orders(&app).await, 1);
    assert_eq!(app.stock(&l).await, (2, 1));
    assert_eq!(app.gate_counter(&l).await, Some(1));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_job_whose_worker_died_after_creating_the_order_gets_no_second_order() {
    let server = MockServer::start().await;
    // The first worker's PaymentIntent call never got an answer it could use.
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            503,
            json!({ "type": "api_error", "message": "Service unavailable" }),
        ))
        .up_to_n_times(1)
        .with_priority(1)
        .mount(&server)
        .await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(CreateIntent::at_once())
        .with_priority(2)
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Chair", 4_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();
    assert!(checkout::process(&deps, job_id).await.is_err());
    let order = order_of_job(&app, job_id).await.expect("order committed");
    // ...and it died holding the job instead of handing it back.
    sqlx::query(
        "UPDATE jobs SET status = 'running', lease_expires_at = now() - interval '1 minute'
         WHERE id = $1",
    )
    .bind(job_id)
    .execute(app.pool())
    .await
    .unwrap();

    let outcome = checkout::process(&deps, job_id).await.expect("run");

    assert_eq!(outcome, ProcessOutcome::Succeeded { order_id: order.id });
    assert_eq!(orders(&app).await, 1);
    assert_eq!(app.stock(&l).await, (2, 1));
    let creates = requests_to(&server, "POST", "/v1/payment_intents").await;
    assert_eq!(creates.len(), 2);
    assert!(
        creates.iter().all(
            |r| header(r, "idempotency-key") == Some(format!("order-{}-pi", order.id).as_str())
        )
    );
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_job_held_under_a_live_lease_is_left_alone_and_retried_later() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Chair", 4_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    mark_running(&app, job_id, 60.0).await;

    let outcome = checkout::process(&app.checkout_deps(), job_id).await;

    // Busy, not skipped: the holder may be a worker cut off from PostgreSQL, so the delivery
    // is retried (with apalis' backoff) until it can claim the job or finds it finished.
    assert!(
        matches!(outcome, Err(checkout::ProcessError::Busy)),
        "{outcome:?}"
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "running");
    assert_eq!(job.attempts, 1, "the busy delivery counted nothing");
    assert_eq!(orders(&app).await, 0);
    assert_eq!(app.stock(&l).await, (2, 0));
    assert_eq!(
        app.gate_counter(&l).await,
        Some(1),
        "the unit stays held for the job"
    );
    app.assert_stock_invariant().await;
}

// ---------------------------------------------------------------------------------------------
// 9. The attempts cap.

#[tokio::test]
async fn a_job_out_of_attempts_fails_and_returns_its_units_to_the_gate() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Desk", 9_000, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    assert_eq!(app.gate_counter(&l).await, Some(1));
    sqlx::query("UPDATE jobs SET attempts = max_attempts WHERE id = $1")
        .bind(job_id)
        .execute(app.pool())
        .await
        .unwrap();

    let outcomes = app.run_checkout_jobs().await;

    assert_eq!(
        outcomes,
        [ProcessOutcome::Failed {
            code: "attempts_exhausted".into()
        }]
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "failed");
    assert_eq!(job.error_code.as_deref(), Some("attempts_exhausted"));
    assert_eq!(job.attempts, checkout::MAX_ATTEMPTS + 1);
    assert_eq!(orders(&app).await, 0);
    assert_eq!(app.stock(&l).await, (3, 0));
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_job_out_of_attempts_after_creating_its_order_cancels_the_order() {
    let server = MockServer::start().await;
    Mock::given(method("POST"))
        .and(path("/v1/payment_intents"))
        .respond_with(stripe_error(
            500,
            json!({ "type": "api_error", "message": "An unknown error occurred" }),
        ))
        .mount(&server)
        .await;
    let app = stripe_app(&server).await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Desk", 9_000, 3).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 2).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let deps = app.checkout_deps();
    assert!(checkout::process(&deps, job_id).await.is_err());
    assert_eq!(app.stock(&l).await, (3, 2));
    sqlx::query("UPDATE jobs SET attempts = max_attempts WHERE id = $1")
        .bind(job_id)
        .execute(app.pool())
        .await
        .unwrap();

    let outcome = checkout::process(&deps, job_id).await.expect("run");

    assert_eq!(
        outcome,
        ProcessOutcome::Failed {
            code: "attempts_exhausted".into()
        }
    );
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "failed");
    assert_eq!(job.error_code.as_deref(), Some("attempts_exhausted"));
    let order = order_of_job(&app, job_id).await.expect("order");
    assert_eq!(order.status.as_str(), "cancelled");
    assert_eq!(order.status_reason.as_deref(), Some("attempts_exhausted"));
    assert_eq!(app.stock(&l).await, (3, 0));
    assert_eq!(app.gate_counter(&l).await, Some(3));
    app.assert_stock_invariant().await;
}

#[tokio::test]
async fn a_claim_is_handed_back_only_by_the_attempt_that_holds_it() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let l = listing(&app.create_listing(&seller, "Lamp", 2_000, 2).await);
    let (_, buyer, address) = app.buyer("buyer").await;
    app.add_to_cart(&buyer, &l, 1).await;
    let job_id = accepted_job(&app.checkout(&buyer, &address, "k").await);
    let mut conn = app.pool().acquire().await.expect("connection");
    let lease = shared::jobs::CLAIM_LEASE;
    let Claim::Claimed(first) = db::jobs::claim(&mut conn, job_id, "checkout", lease)
        .await
        .expect("claim")
    else {
        panic!("a queued job is claimed");
    };
    let retry_in = std::time::Duration::from_secs(1);

    // An attempt whose lease lapsed and was taken over cannot release the new holder's claim.
    let stale = db::jobs::release(&mut conn, job_id, first.attempts - 1, retry_in)
        .await
        .expect("release");
    assert!(!stale, "another attempt's claim is not released");
    assert!(matches!(
        db::jobs::claim(&mut conn, job_id, "checkout", lease)
            .await
            .expect("claim"),
        Claim::Busy
    ));

    // The holder hands it back after a failed attempt: queued, due after the backoff, and the
    // next delivery claims it at once, counting a second attempt.
    let released = db::jobs::release(&mut conn, job_id, first.attempts, retry_in)
        .await
        .expect("release");
    assert!(released);
    let job = job_row(&app, job_id).await;
    assert_eq!(job.status.as_str(), "queued");
    let outcome = checkout::process(&app.checkout_deps(), job_id)
        .await
        .expect("run");
    assert!(
        matches!(outcome, ProcessOutcome::Succeeded { .. }),
        "{outcome:?}"
    );
    assert_eq!(job_row(&app, job_id).await.attempts, 2);
    assert_eq!(orders(&app).await, 1);
    app.assert_stock_invariant().await;
}
