//! The metrics listener of worker and scheduler: `GET /metrics` (Prometheus text) and
//! `GET /health/live` on `METRICS_ADDR`.
//!
//! A few lines of HTTP/1.1 over a tokio socket rather than a web framework: these processes
//! have no other HTTP to serve, and a scrape is one small request per 15 s or so.

use std::{future::Future, io, net::SocketAddr, pin::Pin, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpListener, TcpStream},
};

use super::Family;

/// Work to do before each scrape (e.g. read queue depths), bounded by [`REFRESH_TIMEOUT`].
pub type Refresh = Arc<dyn Fn() -> Pin<Box<dyn Future<Output = ()> + Send>> + Send + Sync>;

/// A slow refresh (Redis stalled) must not hang the scrape; stale gauges are better.
const REFRESH_TIMEOUT: Duration = Duration::from_secs(2);

/// How long a client may take to send its request head.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Binds `addr` now (so a bad or taken address fails start-up) and serves in the background
/// for the life of the process. Returns the bound address (`:0` picks a free port).
pub async fn serve(
    addr: SocketAddr,
    families: &'static [&'static Family],
    refresh: Option<Refresh>,
) -> io::Result<SocketAddr> {
    let listener = TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            match listener.accept().await {
                Ok((stream, _)) => {
                    let refresh = refresh.clone();
                    tokio::spawn(answer(stream, families, refresh));
                }
                Err(e) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error.message = %e, "metrics listener could not accept");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    });
    Ok(bound)
}

async fn answer(
    mut stream: TcpStream,
    families: &'static [&'static Family],
    refresh: Option<Refresh>,
) {
    let Ok(Some(target)) = tokio::time::timeout(READ_TIMEOUT, request_target(&mut stream))
        .await
        .map(|r| r.ok().flatten())
    else {
        return;
    };
    let (status, content_type, body) = match target.as_str() {
        "/metrics" => {
            if let Some(refresh) = refresh {
                let _ = tokio::time::timeout(REFRESH_TIMEOUT, refresh()).await;
            }
            super::refresh_rss();
            let body = super::render(families);
            ("200 OK", "text/plain; version=0.0.4; charset=utf-8", body)
        }
        "/health/live" => ("200 OK", "text/plain; charset=utf-8", "ok\n".to_owned()),
        _ => (
            "404 Not Found",
            "text/plain; charset=utf-8",
            "not found\n".to_owned(),
        ),
    };
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    // The scraper may have gone away; nothing to do about it.
    let _ = stream.write_all(head.as_bytes()).await;
    let _ = stream.write_all(body.as_bytes()).await;
    let _ = stream.shutdown().await;
}

/// Reads the request head and returns the path of a `GET` (`None` for anything else).
async fn request_target(stream: &mut TcpStream) -> io::Result<Option<String>> {
    let mut head = Vec::with_capacity(512);
    let mut chunk = [0_u8; 512];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = stream.read(&mut chunk).await?;
        if n == 0 || head.len() > 8 * 1024 {
            return Ok(None);
        }
        head.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&head);
    let mut parts = line.split_whitespace();
    Ok(match (parts.next(), parts.next()) {
        (Some("GET"), Some(target)) => Some(target.split('?').next().unwrap_or(target).to_owned()),
        _ => None,
    })
}
