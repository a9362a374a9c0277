//! The real application, in-process, over a private database and Redis namespace.

use std::net::SocketAddr;

use api::AppState;
use poem::{
    Addr, Endpoint, EndpointExt, Request, RequestParts,
    endpoint::BoxEndpoint,
    http::{self, StatusCode},
    test::TestClient,
    web::{LocalAddr, RemoteAddr},
};
use redis::aio::ConnectionManager;
use serde_json::{Value, json};
use shared::{
    checkout::{CheckoutDeps, ProcessOutcome},
    config::{Settings, StoreLocation},
    jobs::{Checkout, GeocodeAddress, Job, ProcessImage},
};
use sqlx::PgPool;

use crate::{TestDb, redis_url};

/// A response reduced to what tests assert on.
#[derive(Debug)]
pub struct TestResponse {
    /// HTTP status.
    pub status: StatusCode,
    /// Response headers.
    pub headers: poem::http::HeaderMap,
    /// Parsed JSON body (`Null` when empty or not JSON).
    pub body: Value,
    /// The body as text (lossy UTF-8).
    pub text: String,
    /// The body as sent.
    pub bytes: Vec<u8>,
}

impl TestResponse {
    /// The `error.code` of an error envelope.
    pub fn error_code(&self) -> &str {
        self.body["error"]["code"]
            .as_str()
            .unwrap_or("<no error code>")
    }
}

/// The request header that tells [`TestPeer`] which socket address a request comes from.
pub const PEER_HEADER: &str = "x-test-peer";

/// In-process requests have no socket peer; this endpoint gives a request the peer named in its
/// [`PEER_HEADER`] (and removes the header), so tests can play clients on several addresses, or
/// a proxy.
struct TestPeer<E>(E);

impl<E: Endpoint> Endpoint for TestPeer<E> {
    type Output = E::Output;

    async fn call(&self, req: Request) -> poem::Result<Self::Output> {
        let Some(peer) = req
            .header(PEER_HEADER)
            .and_then(|v| v.parse::<SocketAddr>().ok())
        else {
            return self.0.call(req).await;
        };
        let (parts, body) = req.into_parts();
        let mut rebuilt = http::Request::builder()
            .method(parts.method)
            .uri(parts.uri)
            .version(parts.version)
            .body(())
            .expect("a request that was already valid");
        *rebuilt.headers_mut() = parts.headers;
        rebuilt.headers_mut().remove(PEER_HEADER);
        let (head, ()) = rebuilt.into_parts();
        let parts = RequestParts::from((
            head,
            LocalAddr(Addr::default()),
            RemoteAddr(Addr::SocketAddr(peer)),
            http::uri::Scheme::HTTP,
        ));
        self.0.call(Request::from_parts(parts, body)).await
    }
}

/// The app under test.
pub struct TestApp {
    /// In-process HTTP client.
    pub client: TestClient<BoxEndpoint<'static>>,
    /// The settings the app runs with.
    pub settings: Settings,
    /// Redis connection (same server, private prefix).
    pub redis: ConnectionManager,
    /// The state handed to the app.
    pub state: AppState,
    /// Why this test may end with `queued` jobs (see [`TestApp::allow_queued_jobs`]).
    queued_jobs_allowed: std::sync::Mutex<Option<String>>,
    /// The local object store of this app (removed when it is dropped).
    pub objects_dir: std::path::PathBuf,
    // Declared last: dropped after everything that may hold connections to it.
    db: TestDb,
}

impl TestApp {
    /// Starts the app with default test settings.
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Starts the app after letting the test adjust its settings.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Settings)) -> Self {
        let db = TestDb::new().await;
        let prefix = format!("test-{}", uuid::Uuid::new_v4().simple());
        let mut settings = Settings::from_lookup(|_| None).expect("default settings");
        settings.database_url = db.url.clone();
        settings.redis_url = redis_url();
        settings.redis_prefix = prefix;
        // Every in-process request comes from the same (unknown) address, and tests sign up
        // and refresh freely; the per-address limits have their own tests, which turn them on.
        settings.auth.register_max_per_ip = 0;
        settings.auth.refresh_max_per_ip = 0;
        settings.auth.password_change_max_per_ip = 0;
        // Image files go to a directory of this test's own, removed with the app.
        let objects_dir = std::env::temp_dir()
            .join("marketplace-test-objects")
            .join(&settings.redis_prefix);
        settings.images.store.location = StoreLocation::Local(objects_dir.clone());
        adjust(&mut settings);
        let services = shared::services::Services::with_pool(db.pool.clone(), settings.clone())
            .await
            .expect("Redis, payment and geocoder settings");
        let redis = services.redis.clone();
        let state = AppState::new(services);
        let client = TestClient::new(TestPeer(api::app(state.clone())).boxed());
        Self {
            client,
            settings,
            redis,
            state,
            queued_jobs_allowed: std::sync::Mutex::new(None),
            objects_dir,
            db,
        }
    }

    /// Lets this test end with `queued` jobs, for the reason given (a test of the queueing
    /// itself, or of what a job that has not run yet looks like). Without it a test that leaves
    /// a job queued fails when its app is dropped: run the jobs it started (`run_checkout_jobs`,
    /// `run_geocode_jobs`, `run_refund_jobs`), so that what a test exercises is what a worker
    /// would make of it, and no background work is forgotten.
    pub fn allow_queued_jobs(&self, reason: &str) {
        *self.queued_jobs_allowed.lock().expect("not poisoned") = Some(reason.to_owned());
    }

    /// The `kind id` of every job still `queued`, oldest first. Blocking (a private runtime on
    /// another thread, on a connection of its own), so it works from `Drop` and after a test
    /// closed the app's pool.
    fn queued_jobs_blocking(&self) -> Result<Vec<String>, String> {
        let url = self.db.url.clone();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| e.to_string())?;
            rt.block_on(async {
                use sqlx::Connection;
                let mut conn = sqlx::PgConnection::connect(&url)
                    .await
                    .map_err(|e| e.to_string())?;
                let rows: Vec<(String, uuid::Uuid)> = sqlx::query_as(
                    "SELECT kind, id FROM jobs WHERE status = 'queued' ORDER BY created_at, id",
                )
                .fetch_all(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
                conn.close().await.ok();
                Ok(rows
                    .into_iter()
                    .map(|(kind, id)| format!("{kind} {id}"))
                    .collect())
            })
        })
        .join()
        .map_err(|_| "the check panicked".to_owned())?
    }

    /// What the checkout job handler needs, built from the app's own state.
    pub fn checkout_deps(&self) -> CheckoutDeps {
        self.state.services.checkout()
    }

    /// Runs every queued checkout job inline, as a worker would (tests never wait for one).
    pub async fn run_checkout_jobs(&self) -> Vec<ProcessOutcome> {
        let mut conn = self.pool().acquire().await.expect("connection");
        let ids = shared::db::jobs::queued_ids(&mut conn, <Checkout as Job>::NAME)
            .await
            .expect("queued jobs");
        drop(conn);
        let deps = self.checkout_deps();
        let mut outcomes = Vec::new();
        for id in ids {
            outcomes.push(
                shared::checkout::process(&deps, id)
                    .await
                    .expect("checkout job ran"),
            );
        }
        outcomes
    }

    /// Inserts a verified address for `user_id` directly (as if geocoding had run).
    pub async fn verified_address(&self, user_id: &str) -> String {
        let id = uuid::Uuid::now_v7();
        let user: uuid::Uuid = user_id.parse().expect("user id");
        sqlx::query(
            "INSERT INTO addresses (id, user_id, line1, city, postal_code, country, status,
                                    formatted_address, latitude, longitude)
             VALUES ($1, $2, '1 Main St', 'Springfield', '12345', 'US', 'verified',
                     '1 Main St, Springfield 12345, USA', 39.78, -89.65)",
        )
        .bind(id)
        .bind(user)
        .execute(self.pool())
        .await
        .expect("insert address");
        id.to_string()
    }

    /// Puts `quantity` of a listing in the cart of the holder of `token`.
    pub async fn add_to_cart(&self, token: &str, listing_id: &str, quantity: i64) {
        let resp = self
            .request(
                "PUT",
                &format!("/api/v1/cart/items/{listing_id}"),
                Some(token),
                Some(json!({ "quantity": quantity })),
            )
            .await;
        assert_eq!(resp.status, StatusCode::OK, "add to cart: {:?}", resp.body);
    }

    /// `POST /checkout` with an idempotency key.
    pub async fn checkout(&self, token: &str, address_id: &str, key: &str) -> TestResponse {
        let req = self
            .client
            .post("/api/v1/checkout")
            .header("authorization", format!("Bearer {token}"))
            .header("idempotency-key", key)
            .body_json(&json!({ "address_id": address_id }));
        Self::collect(req.send().await).await
    }

    /// The test database's pool.
    pub fn pool(&self) -> &PgPool {
        &self.db.pool
    }

    /// Signs up `username` and gives them a verified address; returns
    /// `(user id, access token, address id)`.
    pub async fn buyer(&self, username: &str) -> (String, String, String) {
        let (id, token) = self.signed_up(username).await;
        let address = self.verified_address(&id).await;
        (id, token, address)
    }

    /// The stock gate's counter for a listing; `None` while it is not loaded.
    pub async fn gate_counter(&self, listing_id: &str) -> Option<i64> {
        let id: uuid::Uuid = listing_id.parse().expect("listing id");
        self.state
            .gate
            .counter(id)
            .await
            .expect("read gate counter")
    }

    /// `(quantity, reserved)` of a listing, from Postgres.
    pub async fn stock(&self, listing_id: &str) -> (i32, i32) {
        let id: uuid::Uuid = listing_id.parse().expect("listing id");
        sqlx::query_as("SELECT quantity, reserved FROM listings WHERE id = $1")
            .bind(id)
            .fetch_one(self.pool())
            .await
            .expect("listing stock")
    }

    /// Asserts the stock invariant on every listing: `0 <= reserved <= quantity`, and `reserved`
    /// equals the units of the lines of `pending_payment` orders for that listing.
    pub async fn assert_stock_invariant(&self) {
        let rows: Vec<(uuid::Uuid, i32, i32, i64)> = sqlx::query_as(
            "SELECT l.id, l.quantity, l.reserved,
                    COALESCE((SELECT sum(ol.quantity) FROM order_lines ol
                              JOIN orders o ON o.id = ol.order_id
                              WHERE ol.listing_id = l.id AND o.status = 'pending_payment'), 0)::bigint
             FROM listings l ORDER BY l.id",
        )
        .fetch_all(self.pool())
        .await
        .expect("stock invariant query");
        for (id, quantity, reserved, pending) in rows {
            assert!(
                0 <= reserved && reserved <= quantity,
                "listing {id}: reserved {reserved} outside 0..={quantity}"
            );
            assert_eq!(
                i64::from(reserved),
                pending,
                "listing {id}: reserved {reserved} but pending orders hold {pending} units"
            );
        }
    }

    /// Waits (bounded, polling Redis) until the api's job-completion subscription is live, so a
    /// long-poll test cannot lose the wake-up to a subscription still being set up.
    pub async fn job_events_subscribed(&self) {
        let channel = shared::job_events::channel(&self.settings.redis_prefix);
        let what = format!("the api to subscribe to {channel}");
        let channel = &channel;
        crate::eventually(
            &what,
            std::time::Duration::from_secs(10),
            move || async move {
                let (_, subscribers): (String, i64) = redis::cmd("PUBSUB")
                    .arg("NUMSUB")
                    .arg(channel)
                    .query_async(&mut self.redis.clone())
                    .await
                    .expect("PUBSUB NUMSUB");
                if subscribers > 0 {
                    Ok(())
                } else {
                    Err(format!("{subscribers} subscribers"))
                }
            },
        )
        .await;
    }

    /// Sends a request with an optional JSON body and bearer token.
    pub async fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> TestResponse {
        let method: poem::http::Method = method.parse().expect("valid method");
        let mut req = self.client.request(method, path);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        if let Some(body) = body {
            req = req.body_json(&body);
        }
        Self::collect(req.send().await).await
    }

    /// Sends a JSON request as if from socket address `peer` (e.g. `"198.51.100.7:4000"`), with
    /// extra headers.
    pub async fn request_from(
        &self,
        peer: &str,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> TestResponse {
        let method: poem::http::Method = method.parse().expect("valid method");
        let mut req = self.client.request(method, path).header(PEER_HEADER, peer);
        for (name, value) in headers {
            req = req.header(*name, *value);
        }
        if let Some(body) = body {
            req = req.body_json(&body);
        }
        Self::collect(req.send().await).await
    }

    /// Sends a raw body with a chosen content type (for malformed-input tests).
    pub async fn raw(
        &self,
        method: &str,
        path: &str,
        content_type: &str,
        body: &str,
    ) -> TestResponse {
        let method: poem::http::Method = method.parse().expect("valid method");
        let req = self
            .client
            .request(method, path)
            .content_type(content_type)
            .body(body.to_owned());
        Self::collect(req.send().await).await
    }

    /// Reduces a response sent through `client` directly (for unusual requests).
    pub async fn collect(resp: poem::test::TestResponse) -> TestResponse {
        let resp = resp.0;
        let status = resp.status();
        let headers = resp.headers().clone();
        let bytes = resp.into_body().into_vec().await.expect("read body");
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        TestResponse {
            status,
            headers,
            body,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            bytes,
        }
    }

    /// Sends a `multipart/form-data` request: each of `files` as a part named `field`, with the
    /// file name and content type given (which the server must not trust).
    pub async fn upload(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        field: &str,
        files: &[(&str, &str, &[u8])],
    ) -> TestResponse {
        let boundary = format!("----test{}", uuid::Uuid::new_v4().simple());
        let mut body = Vec::new();
        for (file_name, content_type, bytes) in files {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{field}\"; \
                     filename=\"{file_name}\"\r\nContent-Type: {content_type}\r\n\r\n"
                )
                .as_bytes(),
            );
            body.extend_from_slice(bytes);
            body.extend_from_slice(b"\r\n");
        }
        body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
        let method: poem::http::Method = method.parse().expect("valid method");
        let mut req = self
            .client
            .request(method, path)
            .content_type(format!("multipart/form-data; boundary={boundary}"))
            .body(body);
        if let Some(token) = token {
            req = req.header("authorization", format!("Bearer {token}"));
        }
        Self::collect(req.send().await).await
    }

    /// GET with an optional token.
    pub async fn get(&self, path: &str, token: Option<&str>) -> TestResponse {
        self.request("GET", path, token, None).await
    }

    /// POST JSON with an optional token.
    pub async fn post(&self, path: &str, token: Option<&str>, body: Value) -> TestResponse {
        self.request("POST", path, token, Some(body)).await
    }

    /// Registers `username` (email `<username>@example.com`, password `correct horse`).
    pub async fn register(&self, username: &str) -> TestResponse {
        self.post(
            "/api/v1/auth/register",
            None,
            json!({ "username": username, "email": format!("{username}@example.com"), "password": "correct horse" }),
        )
        .await
    }

    /// Logs in and returns the token response.
    pub async fn login(&self, username: &str, password: &str) -> TestResponse {
        self.post(
            "/api/v1/auth/token",
            None,
            json!({ "username": username, "password": password }),
        )
        .await
    }

    /// Registers and logs in `username`; returns `(user id, access token)`.
    pub async fn signed_up(&self, username: &str) -> (String, String) {
        let reg = self.register(username).await;
        assert_eq!(
            reg.status,
            StatusCode::CREATED,
            "register {username}: {:?}",
            reg.body
        );
        let tok = self.login(username, "correct horse").await;
        assert_eq!(
            tok.status,
            StatusCode::OK,
            "login {username}: {:?}",
            tok.body
        );
        let id = reg.body["id"].as_str().expect("user id").to_owned();
        (
            id,
            tok.body["access_token"]
                .as_str()
                .expect("access token")
                .to_owned(),
        )
    }

    /// Creates a listing as the holder of `token`; returns its JSON.
    pub async fn create_listing(
        &self,
        token: &str,
        title: &str,
        price_cents: i64,
        quantity: i64,
    ) -> Value {
        let resp = self
            .post(
                "/api/v1/listings",
                Some(token),
                json!({ "title": title, "price_cents": price_cents, "quantity": quantity }),
            )
            .await;
        assert_eq!(
            resp.status,
            StatusCode::CREATED,
            "create listing: {:?}",
            resp.body
        );
        resp.body
    }
}

/// When a test ends, its app checks that no job is left `queued` (unless the test said why it may
/// be, with [`TestApp::allow_queued_jobs`]): a queued job is work the test started and never
/// looked at. The check is in `Drop` so that no test can forget it; `Drop` cannot await, so it
/// queries on a private runtime on another thread (as [`TestDb`] drops its database), and it is
/// skipped while the test is already failing (a second panic would abort and hide the first).
impl Drop for TestApp {
    fn drop(&mut self) {
        self.clean_redis();
        let _ = std::fs::remove_dir_all(&self.objects_dir);
        let allowed = self
            .queued_jobs_allowed
            .get_mut()
            .map(|reason| reason.is_some())
            .unwrap_or(true);
        if allowed || std::thread::panicking() {
            return;
        }
        match self.queued_jobs_blocking() {
            Ok(queued) if queued.is_empty() => {}
            Ok(queued) => panic!(
                "the test left {} job(s) queued: {queued:?}; run them (run_checkout_jobs, \
                 run_geocode_jobs, run_refund_jobs, run_image_jobs) or call allow_queued_jobs with the reason",
                queued.len()
            ),
            Err(error) => eprintln!("warning: could not check for queued jobs: {error}"),
        }
    }
}

impl TestApp {
    /// Removes this test's Redis keys; the database is dropped by `TestDb`.
    fn clean_redis(&self) {
        let pattern = format!("{}*", self.settings.redis_prefix);
        let url = self.settings.redis_url.clone();
        let ca_cert = self.settings.redis_ca_cert.clone();
        let cleaned = std::thread::spawn(move || -> redis::RedisResult<()> {
            let client = shared::kv::redis_client(&url, ca_cert.as_deref())?;
            let mut conn = client.get_connection()?;
            let keys: Vec<String> = redis::cmd("KEYS").arg(&pattern).query(&mut conn)?;
            if !keys.is_empty() {
                redis::cmd("DEL").arg(keys).query::<()>(&mut conn)?;
            }
            Ok(())
        })
        .join();
        if !matches!(cleaned, Ok(Ok(()))) {
            eprintln!(
                "warning: could not clean Redis keys of {}",
                self.settings.redis_prefix
            );
        }
    }
}

/// Address geocoding: the worker side, run inline.
impl TestApp {
    /// What the geocoding job handler needs, built from the app's settings (`GEOCODER`,
    /// `GOOGLE_GEOCODING_URL`, ...) exactly as a worker builds it.
    pub fn geocode_deps(&self) -> shared::geocode::GeocodeDeps {
        self.state.services.geocode()
    }

    /// Runs every queued geocoding job once, inline, as a worker would (tests never wait for
    /// one). A job that is to be retried is `queued` again afterwards: call this again to run
    /// the retry now, without its backoff delay.
    pub async fn run_geocode_jobs(&self) -> Vec<shared::geocode::ProcessOutcome> {
        let mut conn = self.pool().acquire().await.expect("connection");
        let ids = shared::db::jobs::queued_ids(&mut conn, <GeocodeAddress as Job>::NAME)
            .await
            .expect("queued jobs");
        drop(conn);
        let deps = self.geocode_deps();
        let mut outcomes = Vec::new();
        for id in ids {
            outcomes.push(
                shared::geocode::process(&deps, id)
                    .await
                    .expect("geocode job ran"),
            );
        }
        outcomes
    }
}

/// Image processing: the worker side, run inline.
impl TestApp {
    /// What the image flows need, built from the app's own state.
    pub fn image_deps(&self) -> shared::images::ImageDeps {
        self.state.services.images()
    }

    /// Runs every queued `process_image` job once, inline, as a worker would.
    pub async fn run_image_jobs(&self) -> Vec<shared::images::process::ProcessOutcome> {
        let mut conn = self.pool().acquire().await.expect("connection");
        let ids = shared::db::jobs::queued_ids(&mut conn, <ProcessImage as Job>::NAME)
            .await
            .expect("queued jobs");
        drop(conn);
        let deps = self.image_deps();
        let mut outcomes = Vec::new();
        for id in ids {
            outcomes.push(
                shared::images::process::process(&deps, id)
                    .await
                    .expect("image job ran"),
            );
        }
        outcomes
    }

    /// Every file in this app's object store, as keys.
    pub fn stored_files(&self) -> Vec<String> {
        fn walk(dir: &std::path::Path, root: &std::path::Path, out: &mut Vec<String>) {
            let Ok(entries) = std::fs::read_dir(dir) else {
                return;
            };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    walk(&path, root, out);
                } else if let Ok(rel) = path.strip_prefix(root) {
                    out.push(rel.to_string_lossy().into_owned());
                }
            }
        }
        let mut out = Vec::new();
        walk(&self.objects_dir, &self.objects_dir, &mut out);
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::TestApp;

    async fn queue_a_job(app: &TestApp) {
        sqlx::query("INSERT INTO jobs (id, kind) VALUES ($1, 'checkout')")
            .bind(uuid::Uuid::now_v7())
            .execute(app.pool())
            .await
            .expect("insert job");
    }

    #[tokio::test]
    #[should_panic(expected = "the test left 1 job(s) queued")]
    async fn a_test_that_leaves_a_job_queued_fails() {
        let app = TestApp::spawn().await;
        queue_a_job(&app).await;
    }

    #[tokio::test]
    async fn a_test_may_leave_jobs_queued_when_it_says_why() {
        let app = TestApp::spawn().await;
        queue_a_job(&app).await;
        app.allow_queued_jobs("this test checks the opt-out");
    }

    #[tokio::test]
    async fn finished_jobs_are_not_left_work() {
        let app = TestApp::spawn().await;
        sqlx::query("INSERT INTO jobs (id, kind, status) VALUES ($1, 'checkout', 'succeeded')")
            .bind(uuid::Uuid::now_v7())
            .execute(app.pool())
            .await
            .expect("insert job");
    }
}
