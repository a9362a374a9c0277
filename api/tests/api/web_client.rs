//! The web client served from the api's own origin, and CORS for one hosted elsewhere.

use poem::http::StatusCode;
use test_support::TestApp;

/// A built client: an index page and one hashed asset, in a fresh directory.
fn built_client() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mp-web-{}", uuid::Uuid::now_v7()));
    std::fs::create_dir_all(dir.join("assets")).unwrap();
    std::fs::write(dir.join("index.html"), "<!doctype html><div id=root></div>").unwrap();
    std::fs::write(dir.join("assets/app-3f2a9c.js"), "console.log(1)").unwrap();
    dir
}

#[tokio::test]
async fn the_client_is_served_at_the_root_and_client_routes_load_the_app() {
    let dir = built_client();
    let app = TestApp::spawn_with(|s| s.web_dir = Some(dir.clone())).await;

    for path in [
        "/",
        "/orders/0190e9a2-7c3b-7000-8000-000000000000",
        "/login?next=/cart",
    ] {
        let page = app.get(path, None).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        assert!(page.text.contains("id=root"), "{path}: {}", page.text);
        assert_eq!(page.headers["cache-control"], "no-cache", "{path}");
    }
    let head = app.request("HEAD", "/", None, None).await;
    assert_eq!(head.status, StatusCode::OK);
    assert_eq!(head.headers["cache-control"], "no-cache");
    assert!(head.text.is_empty(), "{}", head.text);
    let asset = app.get("/assets/app-3f2a9c.js", None).await;
    assert_eq!(asset.status, StatusCode::OK);
    assert_eq!(asset.text, "console.log(1)");
    assert_eq!(
        asset.headers["cache-control"],
        "public, max-age=31536000, immutable"
    );
}

#[tokio::test]
async fn the_api_keeps_its_paths_and_a_missing_asset_is_not_the_app() {
    let dir = built_client();
    let app = TestApp::spawn_with(|s| s.web_dir = Some(dir.clone())).await;

    let missing = app.get("/assets/gone-000000.js", None).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert!(!missing.text.contains("id=root"));
    let unknown_api = app.get("/api/v1/nowhere", None).await;
    assert_eq!(unknown_api.status, StatusCode::NOT_FOUND);
    assert_eq!(unknown_api.body["error"]["code"], "not_found");
    assert_eq!(app.get("/health/live", None).await.body["status"], "ok");
    let escape = app.get("/../../etc/passwd", None).await;
    assert!(!escape.text.contains("root:"), "{}", escape.text);
}

#[tokio::test]
async fn without_a_built_client_the_root_is_a_404_envelope() {
    let app = TestApp::spawn_with(|s| s.web_dir = None).await;
    let root = app.get("/", None).await;
    assert_eq!(root.status, StatusCode::NOT_FOUND);
    assert_eq!(root.body["error"]["code"], "not_found");
}

const SHOP: &str = "https://shop.example.com";

#[tokio::test]
async fn an_allowed_origin_may_call_the_api_with_its_headers() {
    let app = TestApp::spawn_with(|s| s.allowed_origins = vec![SHOP.to_owned()]).await;

    let preflight = app
        .request_from(
            "198.51.100.7:4000",
            "OPTIONS",
            "/api/v1/checkout",
            &[
                ("origin", SHOP),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization, content-type, idempotency-key, sentry-trace, baggage",
                ),
            ],
            None,
        )
        .await;
    assert_eq!(preflight.status, StatusCode::OK);
    assert_eq!(preflight.headers["access-control-allow-origin"], SHOP);
    let allowed = preflight.headers["access-control-allow-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    for h in [
        "authorization",
        "idempotency-key",
        "sentry-trace",
        "baggage",
    ] {
        assert!(allowed.contains(h), "{h} not in {allowed}");
    }

    let call = app
        .request_from(
            "198.51.100.7:4000",
            "GET",
            "/api/v1/config",
            &[("origin", SHOP)],
            None,
        )
        .await;
    assert_eq!(call.status, StatusCode::OK);
    assert_eq!(call.headers["access-control-allow-origin"], SHOP);
    let exposed = call.headers["access-control-expose-headers"]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(exposed.contains("x-request-id"), "{exposed}");
}

#[tokio::test]
async fn another_origin_gets_no_cors_grant() {
    let app = TestApp::spawn_with(|s| s.allowed_origins = vec![SHOP.to_owned()]).await;
    let call = app
        .request_from(
            "198.51.100.7:4000",
            "GET",
            "/api/v1/config",
            &[("origin", "https://evil.example.net")],
            None,
        )
        .await;
    assert!(
        call.headers.get("access-control-allow-origin").is_none(),
        "{:?}",
        call.headers
    );

    // Without ALLOWED_ORIGINS no origin but the api's own is granted anything.
    let same_origin_only = TestApp::spawn().await;
    let call = same_origin_only
        .request_from(
            "198.51.100.7:4000",
            "GET",
            "/api/v1/config",
            &[("origin", SHOP)],
            None,
        )
        .await;
    assert!(call.headers.get("access-control-allow-origin").is_none());
}
