use poem::http::StatusCode;
use shared::checkout::ProcessOutcome;
use test_support::TestApp;

#[tokio::test]
async fn a_checkout_creates_an_order_with_a_payment_intent() {
    let app = TestApp::spawn().await;
    let (_, seller) = app.signed_up("seller").await;
    let (buyer_id, buyer) = app.signed_up("buyer").await;
    let listing = app.create_listing(&seller, "A lamp", 1_500, 3).await;
    let listing_id = listing["id"].as_str().unwrap();
    let address = app.verified_address(&buyer_id).await;
    app.add_to_cart(&buyer, listing_id, 2).await;

    let accepted = app.checkout(&buyer, &address, "key-1").await;
    assert_eq!(accepted.status, StatusCode::ACCEPTED, "{:?}", accepted.body);
    let job_id = accepted.body["job_id"].as_str().unwrap().to_owned();
    let outcomes = app.run_checkout_jobs().await;
    assert!(
        matches!(outcomes.as_slice(), [ProcessOutcome::Succeeded { .. }]),
        "{outcomes:?}"
    );

    let job = app
        .get(&format!("/api/v1/jobs/{job_id}"), Some(&buyer))
        .await;
    assert_eq!(job.body["status"], "succeeded", "{:?}", job.body);
    let order_id = job.body["result"]["order_id"].as_str().unwrap();
    assert!(job.body["result"]["client_secret"].as_str().is_some());
    let order = app
        .get(&format!("/api/v1/orders/{order_id}"), Some(&buyer))
        .await;
    assert_eq!(order.status, StatusCode::OK);
    assert_eq!(order.body["status"], "pending_payment");
    assert_eq!(order.body["total_cents"], 3_000);
    assert_eq!(order.body["lines"][0]["title"], "A lamp");
    let listing = app
        .get(&format!("/api/v1/listings/{listing_id}"), None)
        .await;
    assert_eq!(listing.body["available"], 1);
    let cart = app.get("/api/v1/cart", Some(&buyer)).await;
    assert_eq!(cart.body["items"].as_array().unwrap().len(), 0);
}
