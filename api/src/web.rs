//! The web client, served by the api from the same origin.
//!
//! `GET` of any path the API does not own is answered from `WEB_DIR`: a file when it exists,
//! otherwise `index.html`, so client-side routes (`/orders/…`) load the app. Vite names built
//! assets by content hash, so `/assets/…` is cached for a year; `index.html` is never cached, so a
//! deploy is seen on the next load. A missing asset is a 404, never `index.html` served as script.

use std::{path::Path, sync::Arc};

use poem::{
    Endpoint, IntoResponse, Request, Response,
    endpoint::StaticFilesEndpoint,
    http::{HeaderValue, Method, header},
};

/// Paths the API answers itself; everything else may be the web client.
const API_PREFIXES: [&str; 5] = ["/api/", "/health/", "/docs", "/metrics", "/openapi.json"];

/// The built web client.
pub struct WebClient {
    pages: StaticFilesEndpoint,
    assets: StaticFilesEndpoint,
}

impl WebClient {
    /// Serves `dir`, or `None` when it holds no `index.html` (not built yet).
    pub fn open(dir: &Path) -> Option<Self> {
        if !dir.join("index.html").is_file() {
            tracing::warn!(web_dir = %dir.display(), "no web client to serve (build it with `npm --prefix web run build`)");
            return None;
        }
        Some(Self {
            pages: StaticFilesEndpoint::new(dir)
                .index_file("index.html")
                .fallback_to_index()
                .no_cache_index(),
            assets: StaticFilesEndpoint::new(dir),
        })
    }

    fn serves(req: &Request) -> bool {
        let path = req.uri().path();
        matches!(*req.method(), Method::GET | Method::HEAD)
            && !API_PREFIXES.iter().any(|p| path.starts_with(p))
    }
}

/// Middleware: the web client for its paths, the API for the rest.
pub async fn serve<E: Endpoint>(
    next: Arc<E>,
    web: Arc<Option<WebClient>>,
    req: Request,
) -> poem::Result<Response> {
    let Some(web) = web.as_ref().as_ref().filter(|_| WebClient::serves(&req)) else {
        return next.call(req).await.map(IntoResponse::into_response);
    };
    let hashed = req.uri().path().starts_with("/assets/");
    // The file endpoint answers GET only; a HEAD gets the same headers without the body.
    let head = req.method() == Method::HEAD;
    let mut req = req;
    if head {
        req.set_method(Method::GET);
    }
    let mut resp = if hashed {
        web.assets.call(req).await?
    } else {
        web.pages.call(req).await?
    };
    let cache = if hashed {
        "public, max-age=31536000, immutable"
    } else {
        "no-cache"
    };
    resp.headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static(cache));
    if head {
        resp.set_body(());
    }
    Ok(resp)
}
