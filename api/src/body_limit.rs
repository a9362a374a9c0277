//! Request body size limit.
//!
//! poem's `SizeLimit` refuses requests without `Content-Length` (411, even for GET) and does not
//! bound chunked bodies. This one rejects a declared oversize body at once and reads any other
//! body with a hard cap, so no request can make the server buffer more than the limit.

use poem::{
    Body, Endpoint, EndpointExt, IntoResponse, Middleware, Request, Response, http::StatusCode,
};

/// Caps request bodies at `max_bytes` (uploads at `upload_max_bytes`); larger ones get 413.
pub struct BodyLimit {
    max_bytes: usize,
    upload_max_bytes: usize,
}

impl BodyLimit {
    /// A limit of `max_bytes` for every request but image uploads, which get
    /// `upload_max_bytes`.
    pub fn new(max_bytes: usize, upload_max_bytes: usize) -> Self {
        Self {
            max_bytes,
            upload_max_bytes,
        }
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
        let (normal, upload) = (self.max_bytes, self.upload_max_bytes);
        let ep = std::sync::Arc::new(ep);
        poem::endpoint::make(move |mut req: Request| {
            let ep = ep.clone();
            async move {
                let max = if is_upload(&req) { upload } else { normal };
                let too_large = || poem::Error::from_status(StatusCode::PAYLOAD_TOO_LARGE);
                let declared = req
                    .header("content-length")
                    .and_then(|v| v.parse::<usize>().ok());
                if declared.is_some_and(|len| len > max) {
                    return Err(too_large());
                }
                let body = req.take_body();
                if !body.is_empty() {
                    let bytes = body.into_bytes_limit(max).await.map_err(|_| too_large())?;
                    req.set_body(Body::from_bytes(bytes));
                }
                ep.call(req).await.map(IntoResponse::into_response)
            }
        })
        .boxed()
    }
}
