//! The metrics listener of worker and scheduler: `GET /metrics` (Prometheus text) and
//! `GET /health/live` on `METRICS_ADDR`, served by poem, as the api serves its own.

use std::{future::Future, io, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use poem::{
    EndpointExt as _, IntoResponse as _, Response, Route, Server, endpoint, get, handler,
    listener::{Acceptor as _, Listener as _, TcpListener},
};

use super::Exported;

/// Work to do before each scrape (e.g. read queue depths), bounded by [`REFRESH_TIMEOUT`].
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A slow refresh (Redis stalled) must not hang the scrape; stale gauges are better.
pub const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a connection may stay silent (a client that never finishes its request, an idle
/// keep-alive) before it is closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` now (so a bad or taken address fails start-up) and serves in the background
/// for the life of the process. Returns the bound address (`:0` picks a free port).
pub async fn serve(
    addr: SocketAddr,
    families: &'static [&'static dyn Exported],
    refresh: Option<Refresh>,
) -> io::Result<SocketAddr> {
    let acceptor = TcpListener::bind(addr).into_acceptor().await?;
    let bound = acceptor
        .local_addr()
        .first()
        .and_then(|local| local.as_socket_addr().copied())
        .unwrap_or(addr);
    let scrape = endpoint::make(move |_| {
        let refresh = refresh.clone();
        async move {
            if let Some(refresh) = refresh {
                let _ = tokio::time::timeout(REFRESH_TIMEOUT, refresh()).await;
            }
            super::render(families)
                .with_content_type(super::CONTENT_TYPE)
                .into_response()
        }
    });
    let app = Route::new()
        .at("/metrics", get(scrape))
        .at("/health/live", get(live))
        .map_to_response();
    tokio::spawn(async move {
        let server = Server::new_with_acceptor(acceptor)
            .name("metrics")
            .idle_timeout(IDLE_TIMEOUT);
        if let Err(e) = server.run(app).await {
            tracing::error!(error.message = %e, "metrics listener stopped");
        }
    });
    Ok(bound)
}

/// `GET /health/live`: the process is up.
#[handler]
fn live() -> Response {
    "ok\n"
        .with_content_type("text/plain; charset=utf-8")
        .into_response()
}
