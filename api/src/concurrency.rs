//! At most `MAX_CONCURRENT_REQUESTS` requests are answered at once; the others wait their turn.
//!
//! A request that is being answered costs far more memory than one that waits: the futures of
//! the middleware chain and the handler are tens of KiB (measured with DHAT under `bench hot`:
//! about 60 KiB per checkout in flight), and a body is only read once its turn comes. With a
//! thousand buyers pressing "buy" at the same instant, answering all of them at once costs
//! 60 MiB and gains nothing: PostgreSQL has `DATABASE_MAX_CONNECTIONS` connections and the
//! machine a few cores. Waiting here, a request holds only its head (hyper has already read it),
//! its body and a place in a FIFO queue, so the api's memory is bounded by the limit, not by the
//! number of clients, and requests are answered in the order they came. The body is read (within
//! its limit, `body_limit`) before the request waits: a client sending its body slowly never
//! holds a turn, so a few slow clients cannot stall everyone else.
//!
//! A request that waits longer than `REQUEST_QUEUE_TIMEOUT_MS` gets 503 `unavailable` with
//! `Retry-After`, in the error envelope. Exempt, because they must answer under any load or
//! spend their time waiting rather than working: the health checks, `/metrics`, and
//! `GET /api/v1/jobs/{id}` (a long-poll waits up to 30 s for a job; it is cheap while waiting).

use std::{sync::Arc, time::Duration};

use poem::{Endpoint, IntoResponse, Middleware, Request, Response, http::Method};
use shared::metrics;
use tokio::sync::Semaphore;

use crate::{body_limit::BodyLimits, error::ApiError};

/// Middleware: the concurrency limit.
pub struct ConcurrencyLimit {
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    body_limits: BodyLimits,
}

impl ConcurrencyLimit {
    /// `max` requests answered at once; a request waits at most `queue_timeout` for its turn,
    /// after its body was read within `body_limits`.
    pub fn new(max: usize, queue_timeout: Duration, body_limits: BodyLimits) -> Self {
        Self {
            slots: Arc::new(Semaphore::new(max)),
            queue_timeout,
            body_limits,
        }
    }
}

impl<E: Endpoint> Middleware<E> for ConcurrencyLimit {
    type Output = Limited<E>;

    fn transform(&self, ep: E) -> Self::Output {
        Limited {
            inner: ep,
            slots: self.slots.clone(),
            queue_timeout: self.queue_timeout,
            body_limits: self.body_limits,
        }
    }
}

/// The endpoint behind the limit.
pub struct Limited<E> {
    inner: E,
    slots: Arc<Semaphore>,
    queue_timeout: Duration,
    body_limits: BodyLimits,
}

impl<E: Endpoint> Endpoint for Limited<E> {
    type Output = Response;

    async fn call(&self, mut req: Request) -> poem::Result<Response> {
        self.body_limits.buffer(&mut req).await;
        // Both calls are boxed, so that the chain's futures (tens of KiB) exist only for the
        // requests being answered: inline, every waiting request's future would be that large.
        if is_exempt(&req) {
            return Box::pin(self.inner.call(req))
                .await
                .map(IntoResponse::into_response);
        }
        // A free turn is taken at once; only a request that must wait arms a timer and counts.
        let _slot = match self.slots.try_acquire() {
            Ok(slot) => slot,
            Err(_) => {
                let _waiting = Waiting::start();
                match tokio::time::timeout(self.queue_timeout, self.slots.acquire()).await {
                    Ok(Ok(slot)) => slot,
                    // Timed out (the semaphore is never closed).
                    _ => {
                        metrics::HTTP_SHED.inc([]);
                        return Ok(ApiError::unavailable(
                            "the server is busy; retry after the indicated time",
                        )
                        .into_response());
                    }
                }
            }
        };
        Box::pin(self.inner.call(req))
            .await
            .map(IntoResponse::into_response)
    }
}

/// Counts a request in `http_requests_queued` while it waits.
struct Waiting;

impl Waiting {
    fn start() -> Self {
        metrics::HTTP_QUEUED.add([], 1);
        Self
    }
}

impl Drop for Waiting {
    fn drop(&mut self) {
        metrics::HTTP_QUEUED.add([], -1);
    }
}

/// Requests that never wait for a slot: health checks, metrics and job status (long-polls).
fn is_exempt(req: &Request) -> bool {
    let path = req.uri().path();
    if *req.method() != Method::GET {
        return false;
    }
    path.starts_with("/health/") || path == "/metrics" || path.starts_with("/api/v1/jobs/")
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use poem::{EndpointExt as _, http::StatusCode, test::TestClient};
    use serde_json::Value;

    use super::*;

    /// An app behind a limit of one whose handler notes when each request starts and ends,
    /// and holds each POST until the test lets one through (`gate.add_permits(1)`).
    fn app(
        queue_timeout: Duration,
    ) -> (
        Arc<impl Endpoint<Output = Response>>,
        Arc<Semaphore>,
        Arc<Mutex<Vec<String>>>,
    ) {
        let gate = Arc::new(Semaphore::new(0));
        let log = Arc::new(Mutex::new(Vec::new()));
        let (g, l) = (gate.clone(), log.clone());
        let handler = poem::endpoint::make(move |req: Request| {
            let (gate, log) = (g.clone(), l.clone());
            async move {
                let path = req.uri().path().to_owned();
                // Only POSTs hold: the exempt requests are GETs and must answer at once.
                if req.method() == Method::POST {
                    log.lock().unwrap().push(format!("start {path}"));
                    gate.acquire().await.unwrap().forget();
                    log.lock().unwrap().push(format!("end {path}"));
                }
                "done"
            }
        });
        let bodies = BodyLimits {
            max_bytes: 1024,
            upload_max_bytes: 1024,
        };
        let limit = ConcurrencyLimit::new(1, queue_timeout, bodies);
        (Arc::new(handler.with(limit)), gate, log)
    }

    async fn until(what: impl Fn() -> bool) {
        while !what() {
            tokio::task::yield_now().await;
        }
    }

    /// Sends `POST /a` and returns once it holds the only turn; the task answers its status.
    async fn hold_the_turn(
        app: &Arc<impl Endpoint<Output = Response> + 'static>,
        log: &Mutex<Vec<String>>,
    ) -> tokio::task::JoinHandle<StatusCode> {
        let app = app.clone();
        let holder =
            tokio::spawn(async move { TestClient::new(app).post("/a").send().await.0.status() });
        until(|| log.lock().unwrap().len() == 1).await;
        holder
    }

    #[tokio::test]
    async fn requests_past_the_limit_wait_and_are_answered_one_at_a_time() {
        let (app, gate, log) = app(Duration::from_secs(3600));
        let send = |path: &'static str| {
            let app = app.clone();
            tokio::spawn(async move { TestClient::new(app).post(path).send().await.0.status() })
        };
        let first = send("/a");
        until(|| log.lock().unwrap().len() == 1).await;
        let second = send("/b");
        let third = send("/c");
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        assert_eq!(
            *log.lock().unwrap(),
            ["start /a"],
            "only one request at a time"
        );
        gate.add_permits(3);
        for answer in [first, second, third] {
            assert_eq!(answer.await.unwrap(), StatusCode::OK);
        }
        let log = log.lock().unwrap();
        assert_eq!(log[..2], ["start /a", "end /a"]);
        // The two that waited each ran alone.
        assert_eq!(log.len(), 6);
        assert!(log[2].starts_with("start") && log[3] == log[2].replace("start", "end"));
        assert!(log[4].starts_with("start") && log[5] == log[4].replace("start", "end"));
    }

    #[tokio::test(start_paused = true)]
    async fn a_request_that_waits_past_the_queue_timeout_gets_503_in_the_error_envelope() {
        let (app, gate, log) = app(Duration::from_millis(100));
        let holder = hold_the_turn(&app, &log).await;
        let started = tokio::time::Instant::now();
        let resp = TestClient::new(app.clone()).post("/b").send().await;
        let waited = started.elapsed();
        assert!(waited >= Duration::from_millis(100) && waited < Duration::from_millis(150));
        resp.assert_status(StatusCode::SERVICE_UNAVAILABLE);
        resp.assert_header_exist("retry-after");
        let body: Value = resp.json().await.value().deserialize();
        assert_eq!(body["error"]["code"], "unavailable");
        assert_eq!(
            *log.lock().unwrap(),
            ["start /a"],
            "the refused request never ran"
        );
        gate.add_permits(1);
        assert_eq!(holder.await.unwrap(), StatusCode::OK);
    }

    #[tokio::test]
    async fn a_client_sending_its_body_slowly_holds_no_turn() {
        let (app, gate, log) = app(Duration::from_secs(3600));
        let (send_body, body) = futures::channel::mpsc::unbounded::<std::io::Result<Vec<u8>>>();
        let slow = {
            let app = app.clone();
            tokio::spawn(async move {
                let body = poem::Body::from_bytes_stream(body);
                TestClient::new(app)
                    .post("/slow")
                    .body(body)
                    .send()
                    .await
                    .0
                    .status()
            })
        };
        send_body.unbounded_send(Ok(b"{".to_vec())).unwrap();
        // The slow request has read what was sent and waits for the rest of its body.
        for _ in 0..100 {
            tokio::task::yield_now().await;
        }
        // The limit is one: the slow request's body is still open, yet another one is answered
        // (had the slow one taken the turn before reading its body, this would never answer).
        gate.add_permits(1);
        let client = TestClient::new(app.clone());
        let resp = tokio::time::timeout(Duration::from_secs(5), client.post("/fast").send())
            .await
            .expect("the fast request waited behind the slow body");
        resp.assert_status_is_ok();
        assert_eq!(*log.lock().unwrap(), ["start /fast", "end /fast"]);
        send_body.unbounded_send(Ok(b"}".to_vec())).unwrap();
        drop(send_body);
        gate.add_permits(1);
        assert_eq!(slow.await.unwrap(), StatusCode::OK);
        assert_eq!(log.lock().unwrap()[2..], ["start /slow", "end /slow"]);
    }

    #[tokio::test(start_paused = true)]
    async fn health_metrics_and_job_polls_never_wait() {
        let (app, gate, log) = app(Duration::from_millis(100));
        let holder = hold_the_turn(&app, &log).await;
        for path in [
            "/health/live",
            "/health/ready",
            "/metrics",
            "/api/v1/jobs/abc",
        ] {
            let resp = TestClient::new(app.clone()).get(path).send().await;
            assert_eq!(resp.0.status(), StatusCode::OK, "{path}");
        }
        // Not exempt: a POST to a job path, and any other GET.
        for (method, path) in [
            (Method::POST, "/api/v1/jobs/abc"),
            (Method::GET, "/api/v1/me"),
        ] {
            let resp = TestClient::new(app.clone())
                .request(method, path)
                .send()
                .await;
            assert_eq!(resp.0.status(), StatusCode::SERVICE_UNAVAILABLE, "{path}");
        }
        gate.add_permits(1);
        assert_eq!(holder.await.unwrap(), StatusCode::OK);
    }
}
