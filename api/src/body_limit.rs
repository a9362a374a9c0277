//! Request body size limit.
//!
//! poem's `SizeLimit` refuses requests without `Content-Length` (411, even for GET) and does not
//! bound chunked bodies. This one rejects a declared oversize body at once and reads any other
//! body with a hard cap, so no request can make the server buffer more than the limit.
//!
//! The body is read by [`BodyLimits::buffer`], first of all (`concurrency` calls it before a
//! request waits for its turn, so a client that sends its body slowly never holds one); the
//! [`BodyLimit`] middleware, inside the error policy, answers 413 for a body that was over.

use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, http::StatusCode,
};

/// How many bytes a request body may have.
#[derive(Debug, Clone, Copy)]
pub struct BodyLimits {
    /// Every request but image uploads (`MAX_BODY_BYTES`).
    pub max_bytes: usize,
    /// Image uploads (`IMAGE_UPLOAD_MAX_BYTES`).
    pub upload_max_bytes: usize,
}

/// What [`BodyLimits::buffer`] did with a request's body, kept in its extensions so the body is
/// read once however many layers ask.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Buffered {
    /// In memory, within the limit.
    Kept,
    /// Over the limit (or unreadable), and dropped.
    TooLarge,
}

impl BodyLimits {
    /// The limit of `req`'s body.
    fn of(&self, req: &Request) -> usize {
        if is_upload(req) {
            self.upload_max_bytes
        } else {
            self.max_bytes
        }
    }

    /// Reads `req`'s body into memory, at most its limit. A body over the limit (declared or
    /// sent), or one that could not be read, is dropped and the request marked, so that
    /// [`BodyLimit`] answers 413. A body already read is kept as it is.
    pub async fn buffer(&self, req: &mut Request) {
        if req.extensions().get::<Buffered>().is_some() {
            return;
        }
        let outcome = self.read(req).await;
        req.extensions_mut().insert(outcome);
    }

    async fn read(&self, req: &mut Request) -> Buffered {
        let max = self.of(req);
        let declared = req
            .header("content-length")
            .and_then(|v| v.parse::<usize>().ok());
        if declared.is_some_and(|len| len > max) {
            return Buffered::TooLarge;
        }
        let body = req.take_body();
        if body.is_empty() {
            return Buffered::Kept;
        }
        match body.into_bytes_limit(max).await {
            Ok(bytes) => {
                req.set_body(Body::from_bytes(bytes));
                Buffered::Kept
            }
            Err(_) => Buffered::TooLarge,
        }
    }
}

/// Caps request bodies at their [`BodyLimits`]; larger ones get 413.
pub struct BodyLimit {
    limits: BodyLimits,
}

impl BodyLimit {
    /// The limit for every request.
    pub fn new(limits: BodyLimits) -> Self {
        Self { limits }
    }
}

/// Whether `req` uploads images: `POST /api/v1/listings/{id}/images` or
/// `PUT /api/v1/users/me/avatar`.
fn is_upload(req: &Request) -> bool {
    let path = req.uri().path();
    match *req.method() {
        poem::http::Method::POST => path
            .strip_prefix("/api/v1/listings/")
            .and_then(|rest| rest.strip_suffix("/images"))
            .is_some_and(|id| !id.is_empty() && !id.contains('/')),
        poem::http::Method::PUT => path == "/api/v1/users/me/avatar",
        _ => false,
    }
}

impl<E: Endpoint + 'static> Middleware<E> for BodyLimit {
    type Output = poem::endpoint::BoxEndpoint<'static, Response>;

    fn transform(&self, ep: E) -> Self::Output {
        let limits = self.limits;
        let ep = std::sync::Arc::new(ep);
        poem::endpoint::make(move |mut req: Request| {
            let ep = ep.clone();
            async move {
                limits.buffer(&mut req).await;
                if req.extensions().get::<Buffered>() == Some(&Buffered::TooLarge) {
                    return Err(poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE));
                }
                ep.call(req).await.map(IntoResponse::into_response)
            }
        })
        .boxed()
    }
}
