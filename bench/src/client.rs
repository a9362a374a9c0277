//! The few API calls the load generator makes, over one pooled reqwest client.

use std::{
    sync::atomic::{AtomicU64, Ordering},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use reqwest::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};
use uuid::Uuid;

/// An API client; cheap to share behind an `Arc`.
pub(crate) struct Api {
    http: reqwest::Client,
    base: String,
    /// Every request sent, for requests per second.
    requests: AtomicU64,
}

#[derive(Deserialize)]
struct TokenResponse {
    access_token: String,
}

#[derive(Deserialize)]
struct Created {
    id: Uuid,
}

#[derive(Deserialize)]
struct JobAccepted {
    job_id: Uuid,
}

#[derive(Deserialize)]
struct JobErrorBody {
    code: String,
}

#[derive(Deserialize)]
struct JobBody {
    status: String,
    error: Option<JobErrorBody>,
    result: Option<Value>,
}

/// The answer to `POST /checkout`.
#[derive(Debug)]
pub(crate) struct CheckoutAnswer {
    pub status: u16,
    pub job_id: Option<Uuid>,
    /// `error.code` of an error body.
    pub error_code: Option<String>,
    /// The body of an answer that is neither 202 nor 409 (truncated), for the bug list.
    pub unexpected_body: Option<String>,
}

/// A job in a final state (or given up on).
#[derive(Debug)]
pub(crate) struct JobFinal {
    /// `succeeded`, `failed`, or `timeout:<last status>` / `error:<reason>`.
    pub status: String,
    pub error_code: Option<String>,
    /// The job's `result` when it succeeded (checkout: `{order_id, client_secret}`).
    pub result: Option<Value>,
}

/// The answer to a webhook delivery.
#[derive(Debug)]
pub(crate) struct WebhookAnswer {
    /// HTTP status, 0 when the request failed without an answer.
    pub status: u16,
    /// `status` of a 200 body (`stored`, `duplicate`, `ignored`), else `error.code` or the error.
    pub detail: String,
}

/// The answer to an image upload.
#[derive(Debug)]
pub(crate) struct UploadAnswer {
    /// HTTP status, 0 when the request failed without an answer.
    pub status: u16,
    /// Every image of the listing in the 201 body (the new ones among them).
    pub image_ids: Vec<Uuid>,
    /// `error.code` of an error body, or the error.
    pub error: Option<String>,
}

#[derive(Deserialize)]
struct ImageListBody {
    images: Vec<Created>,
}

/// The boundary of the bench's multipart bodies. A part ends at the first line that starts with
/// it, so [`upload_body`] checks that the file does not contain it.
const BOUNDARY: &str = "bench-images-7f3a9c1e5b2d4f60";

/// A `multipart/form-data` body with `file` as the one part `files` (what a browser sends).
pub(crate) fn upload_body(file: &[u8]) -> anyhow::Result<Vec<u8>> {
    if file
        .windows(BOUNDARY.len())
        .any(|w| w == BOUNDARY.as_bytes())
    {
        bail!("the file contains the multipart boundary");
    }
    let head = format!(
        "--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"files\"; filename=\"bench.jpg\"\r\n\
         Content-Type: image/jpeg\r\n\r\n"
    );
    let tail = format!("\r\n--{BOUNDARY}--\r\n");
    let mut body = Vec::with_capacity(head.len() + file.len() + tail.len());
    body.extend_from_slice(head.as_bytes());
    body.extend_from_slice(file);
    body.extend_from_slice(tail.as_bytes());
    Ok(body)
}

fn error_code(body: &str) -> Option<String> {
    let v: Value = serde_json::from_str(body).ok()?;
    Some(v.get("error")?.get("code")?.as_str()?.to_owned())
}

fn truncate(s: &str) -> String {
    s.chars().take(300).collect()
}

impl Api {
    /// A client for `base` (e.g. `http://127.0.0.1:8080`) keeping up to `pool` idle connections.
    pub(crate) fn new(base: &str, pool: usize) -> anyhow::Result<Self> {
        let http = reqwest::Client::builder()
            .no_proxy()
            .tcp_nodelay(true)
            .pool_max_idle_per_host(pool)
            .pool_idle_timeout(Duration::from_secs(300))
            .connect_timeout(Duration::from_secs(10))
            // Long-polls wait up to 30 s on the server.
            .timeout(Duration::from_secs(45))
            .build()
            .context("failed to build the HTTP client")?;
        Ok(Self {
            http,
            base: base.trim_end_matches('/').to_owned(),
            requests: AtomicU64::new(0),
        })
    }

    /// Requests sent so far.
    pub(crate) fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> anyhow::Result<(StatusCode, String)> {
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = req.send().await?;
        let status = resp.status();
        Ok((status, resp.text().await?))
    }

    async fn expect<T: for<'de> Deserialize<'de>>(
        &self,
        what: &str,
        want: StatusCode,
        req: reqwest::RequestBuilder,
    ) -> anyhow::Result<T> {
        let (status, body) = self
            .send(req)
            .await
            .with_context(|| format!("{what}: request failed"))?;
        if status != want {
            bail!("{what}: expected {want}, got {status}: {}", truncate(&body));
        }
        serde_json::from_str(&body).with_context(|| format!("{what}: unexpected body {body:?}"))
    }

    /// `GET /health/live` (opens a pooled connection before the measured phase).
    pub(crate) async fn live(&self) -> anyhow::Result<()> {
        let (status, _) = self.send(self.http.get(self.url("/health/live"))).await?;
        if !status.is_success() {
            bail!("/health/live answered {status}");
        }
        Ok(())
    }

    /// Waits until `GET /health/ready` answers 200.
    pub(crate) async fn wait_ready(&self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no answer yet");
        while Instant::now() < deadline {
            match self.send(self.http.get(self.url("/health/ready"))).await {
                Ok((s, _)) if s.is_success() => return Ok(()),
                Ok((s, body)) => last = format!("{s}: {}", truncate(&body)),
                Err(e) => last = format!("{e:#}"),
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        bail!("{} not ready after {timeout:?}: {last}", self.base)
    }

    /// `POST /api/v1/auth/token`: an access token.
    pub(crate) async fn login(&self, username: &str, password: &str) -> anyhow::Result<String> {
        let req = self
            .http
            .post(self.url("/api/v1/auth/token"))
            .json(&json!({ "username": username, "password": password }));
        let t: TokenResponse = self.expect("login", StatusCode::OK, req).await?;
        Ok(t.access_token)
    }

    /// `POST /api/v1/listings`: the new listing's id.
    pub(crate) async fn create_listing(
        &self,
        token: &str,
        title: &str,
        price_cents: i64,
        quantity: i64,
    ) -> anyhow::Result<Uuid> {
        let req = self
            .http
            .post(self.url("/api/v1/listings"))
            .bearer_auth(token)
            .json(&json!({
                "title": title,
                "description": "created by the load generator",
                "price_cents": price_cents,
                "quantity": quantity,
            }));
        let l: Created = self
            .expect("create listing", StatusCode::CREATED, req)
            .await?;
        Ok(l.id)
    }

    /// `PUT /api/v1/cart/items/{listing}`.
    pub(crate) async fn put_cart_item(
        &self,
        token: &str,
        listing: Uuid,
        quantity: i64,
    ) -> anyhow::Result<()> {
        let req = self
            .http
            .put(self.url(&format!("/api/v1/cart/items/{listing}")))
            .bearer_auth(token)
            .json(&json!({ "quantity": quantity }));
        let _: Value = self.expect("put cart item", StatusCode::OK, req).await?;
        Ok(())
    }

    /// `POST /api/v1/checkout`.
    pub(crate) async fn checkout(
        &self,
        token: &str,
        address_id: Uuid,
        idempotency_key: &str,
    ) -> anyhow::Result<CheckoutAnswer> {
        let req = self
            .http
            .post(self.url("/api/v1/checkout"))
            .bearer_auth(token)
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({ "address_id": address_id }));
        let (status, body) = self.send(req).await?;
        let mut answer = CheckoutAnswer {
            status: status.as_u16(),
            job_id: None,
            error_code: None,
            unexpected_body: None,
        };
        match status {
            StatusCode::ACCEPTED => {
                let j: JobAccepted = serde_json::from_str(&body)
                    .with_context(|| format!("checkout: unexpected 202 body {body:?}"))?;
                answer.job_id = Some(j.job_id);
            }
            StatusCode::CONFLICT => answer.error_code = error_code(&body),
            _ => {
                answer.error_code = error_code(&body);
                answer.unexpected_body = Some(truncate(&body));
            }
        }
        Ok(answer)
    }

    /// Long-polls `GET /api/v1/jobs/{id}?wait=30` until the job is final or `deadline` passes.
    pub(crate) async fn wait_job(&self, token: &str, job: Uuid, deadline: Instant) -> JobFinal {
        let mut last = String::from("unknown");
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return JobFinal {
                    status: format!("timeout:{last}"),
                    error_code: None,
                    result: None,
                };
            }
            let wait = left.as_secs().clamp(1, 30);
            let req = self
                .http
                .get(self.url(&format!("/api/v1/jobs/{job}?wait={wait}")))
                .bearer_auth(token);
            let (status, body) = match self.send(req).await {
                Ok(r) => r,
                Err(e) => {
                    return JobFinal {
                        status: format!("error:{e:#}"),
                        error_code: None,
                        result: None,
                    };
                }
            };
            if status != StatusCode::OK {
                return JobFinal {
                    status: format!("error:{status}"),
                    error_code: error_code(&body),
                    result: None,
                };
            }
            match serde_json::from_str::<JobBody>(&body) {
                Ok(j) if j.status == "succeeded" || j.status == "failed" => {
                    return JobFinal {
                        status: j.status,
                        error_code: j.error.map(|e| e.code),
                        result: j.result,
                    };
                }
                Ok(j) => last = j.status,
                Err(e) => {
                    return JobFinal {
                        status: format!("error:bad job body ({e})"),
                        error_code: None,
                        result: None,
                    };
                }
            }
        }
    }

    /// `POST /api/v1/listings/{id}/images` with a body from [`upload_body`].
    pub(crate) async fn upload_images(
        &self,
        token: &str,
        listing: Uuid,
        body: Vec<u8>,
    ) -> UploadAnswer {
        let req = self
            .http
            .post(self.url(&format!("/api/v1/listings/{listing}/images")))
            .bearer_auth(token)
            .header(
                "Content-Type",
                format!("multipart/form-data; boundary={BOUNDARY}"),
            )
            .body(body);
        match self.send(req).await {
            Ok((status, body)) if status == StatusCode::CREATED => {
                match serde_json::from_str::<ImageListBody>(&body) {
                    Ok(list) => UploadAnswer {
                        status: 201,
                        image_ids: list.images.into_iter().map(|i| i.id).collect(),
                        error: None,
                    },
                    Err(e) => UploadAnswer {
                        status: 201,
                        image_ids: Vec::new(),
                        error: Some(format!("unexpected body ({e}): {}", truncate(&body))),
                    },
                }
            }
            Ok((status, body)) => UploadAnswer {
                status: status.as_u16(),
                image_ids: Vec::new(),
                error: Some(error_code(&body).unwrap_or_else(|| truncate(&body))),
            },
            Err(e) => UploadAnswer {
                status: 0,
                image_ids: Vec::new(),
                error: Some(format!("{e:#}")),
            },
        }
    }

    /// `GET /api/v1/listings/{id}/images` as its seller: `(url, thumb_url)` of each image.
    pub(crate) async fn image_urls(
        &self,
        token: &str,
        listing: Uuid,
    ) -> anyhow::Result<Vec<(Option<String>, Option<String>)>> {
        #[derive(Deserialize)]
        struct Urls {
            url: Option<String>,
            thumb_url: Option<String>,
        }
        #[derive(Deserialize)]
        struct List {
            images: Vec<Urls>,
        }
        let req = self
            .http
            .get(self.url(&format!("/api/v1/listings/{listing}/images")))
            .bearer_auth(token);
        let list: List = self.expect("list images", StatusCode::OK, req).await?;
        Ok(list
            .images
            .into_iter()
            .map(|i| (i.url, i.thumb_url))
            .collect())
    }

    /// The bytes at `url`: a path on the api (`/api/v1/media/…`) or an absolute URL.
    pub(crate) async fn get_bytes(&self, url: &str) -> anyhow::Result<Vec<u8>> {
        let full = if url.starts_with('/') {
            self.url(url)
        } else {
            url.to_owned()
        };
        self.requests.fetch_add(1, Ordering::Relaxed);
        let resp = self.http.get(&full).send().await?;
        let status = resp.status();
        if !status.is_success() {
            bail!("GET {full}: {status}");
        }
        Ok(resp.bytes().await?.to_vec())
    }

    /// `GET url` as text (a Prometheus scrape; `/metrics` on the api when `url` is a path).
    pub(crate) async fn get_text(&self, url: &str) -> anyhow::Result<String> {
        let bytes = self.get_bytes(url).await?;
        String::from_utf8(bytes).context("not UTF-8")
    }

    /// `POST /api/v1/webhooks/stripe` with `body` as raw bytes and `Stripe-Signature: signature`.
    pub(crate) async fn post_webhook(&self, body: Vec<u8>, signature: &str) -> WebhookAnswer {
        let req = self
            .http
            .post(self.url("/api/v1/webhooks/stripe"))
            .header("Content-Type", "application/json; charset=utf-8")
            .header("Stripe-Signature", signature)
            .body(body);
        match self.send(req).await {
            Ok((status, body)) if status == StatusCode::OK => WebhookAnswer {
                status: 200,
                detail: serde_json::from_str::<Value>(&body)
                    .ok()
                    .and_then(|v| Some(v.get("status")?.as_str()?.to_owned()))
                    .unwrap_or_else(|| format!("unexpected body {}", truncate(&body))),
            },
            Ok((status, body)) => WebhookAnswer {
                status: status.as_u16(),
                detail: error_code(&body).unwrap_or_else(|| truncate(&body)),
            },
            Err(e) => WebhookAnswer {
                status: 0,
                detail: format!("{e:#}"),
            },
        }
    }
}
