//! The HTTP API: thin handlers over `shared`, the OpenAPI document and the server start-up.

pub mod allow;
pub mod body_limit;
pub mod concurrency;
pub mod error;
pub mod error_code;
pub mod fields;
pub mod job_waiter;
pub mod observe;
pub mod optional_body;
pub mod page;
pub mod request_trace;
pub mod routes;
pub mod security;
pub mod state;
pub mod statuses;
pub mod web;

use std::sync::Arc;

use anyhow::Context;
use poem::{
    EndpointExt, Route, Server,
    endpoint::BoxEndpoint,
    http::Method,
    listener::TcpListener,
    middleware::{CatchPanic, Cors, Tracing},
};
use poem_openapi::OpenApiService;
use shared::config::Settings;

pub use state::AppState;

/// The OpenAPI service with every API group.
pub fn openapi(state: &AppState) -> OpenApiService<routes::Apis, ()> {
    OpenApiService::new(
        routes::apis(state),
        "Marketplace API",
        env!("CARGO_PKG_VERSION"),
    )
    .description("Sellers list goods, buyers check out; background work runs on a worker fleet.")
}

/// The OpenAPI document as served and committed: what poem-openapi generates, with
/// `additionalProperties: false` on every multipart body. The upload handlers refuse parts they do
/// not declare (`deny_unknown_fields`), and the generated schema cannot say so itself. The text is
/// patched in place (poem-openapi's layout is fixed), so the document keeps its order.
pub fn spec(state: &AppState) -> String {
    const BODY: &str = "\"multipart/form-data\": {";
    const OBJECT: &str = "\"type\": \"object\",";
    let generated = openapi(state).spec();
    let mut out = String::with_capacity(generated.len() + 256);
    let mut rest = generated.as_str();
    while let Some(at) = rest.find(BODY) {
        let (before, from_body) = rest.split_at(at);
        out.push_str(before);
        let Some(object) = from_body.find(OBJECT) else {
            rest = from_body;
            break;
        };
        let (head, tail) = from_body.split_at(object + OBJECT.len());
        let indent: String = head[..object]
            .rsplit('\n')
            .next()
            .unwrap_or_default()
            .chars()
            .take_while(|c| *c == ' ')
            .collect();
        out.push_str(head);
        out.push_str(&format!("\n{indent}\"additionalProperties\": false,"));
        rest = tail;
    }
    out.push_str(rest);
    out
}

/// The complete application: API, docs, middleware. Used by `run` and by tests.
pub fn app(state: AppState) -> BoxEndpoint<'static> {
    let body_limits = body_limit::BodyLimits {
        max_bytes: state.settings.max_body_bytes,
        upload_max_bytes: state.settings.images.upload_max_bytes,
    };
    let service = openapi(&state);
    let document = spec(&state);
    let allowed = Arc::new(allow::AllowedMethods::from_spec(
        &serde_json::from_str(&document).unwrap_or_default(),
        &[("/openapi.json", "GET"), ("/metrics", "GET")],
    ));
    let spec = poem::endpoint::make_sync(move |_| {
        poem::Response::builder()
            .content_type("application/json; charset=utf-8")
            .body(document.clone())
    });
    // Built on each visit (a few milliseconds), not kept: the page inlines Swagger UI's 3 MiB
    // bundle, which would otherwise stay resident in every api for a page rarely opened.
    let docs_state = state.clone();
    let docs =
        poem::endpoint::make_sync(move |_| poem::web::Html(openapi(&docs_state).swagger_ui_html()));
    let web_client = Arc::new(
        state
            .settings
            .web_dir
            .as_deref()
            .and_then(web::WebClient::open),
    );
    let origins = state.settings.allowed_origins.clone();
    let proxies = Arc::new(state.settings.auth.trusted_proxies.clone());
    Route::new()
        .nest("/", service)
        .at("/openapi.json", spec)
        .nest("/docs", Route::new().at("/", docs))
        .at("/metrics", poem::get(observe::metrics_endpoint))
        .with(body_limit::BodyLimit::new(body_limits))
        .with(CatchPanic::new().with_handler(error::panic_response))
        // Inside the error policy: it still sees which operation answered, also for errors.
        .around(observe::observe)
        .around(error::json_errors)
        .around(move |next, req| allow::add_allow(next, allowed.clone(), req))
        .around(move |next, req| web::serve(next, web_client.clone(), req))
        .with(Tracing)
        .around(move |next, req| request_trace::request_trace(next, proxies.clone(), req))
        // Before the rest of the chain runs, so a waiting request costs only its head and body.
        .with(concurrency::ConcurrencyLimit::new(
            state.settings.max_concurrent_requests,
            state.settings.request_queue_timeout,
            body_limits,
        ))
        // Outermost, so a preflight is answered before routing (which knows no OPTIONS), and a
        // 503 of the concurrency limit still carries the CORS headers a browser needs to read it.
        .with_if(!origins.is_empty(), cors(&origins))
        .boxed()
}

/// CORS for a web client hosted elsewhere (`ALLOWED_ORIGINS`): the headers it sends and the
/// request id it may read. Tokens travel in `Authorization`, never in cookies, so no credentials.
fn cors(origins: &[String]) -> Cors {
    Cors::new()
        .allow_origins(origins)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
        ])
        .allow_headers([
            "authorization",
            "content-type",
            "idempotency-key",
            "sentry-trace",
            "baggage",
        ])
        .expose_headers(["x-request-id"])
        .max_age(600)
}

/// Applies pending migrations (`api migrate`, and the api's start with `RUN_MIGRATIONS`). With
/// `DATABASE_CREATE` on (the default in dev) a missing database is created first; off, no
/// `CREATE DATABASE` is sent, so a role without `CREATEDB` can migrate the database it was given,
/// and a missing one is an error that names the setting.
pub async fn migrate(settings: &Settings) -> anyhow::Result<()> {
    if settings.database_create {
        shared::kv::ensure_database(&settings.database_url)
            .await
            .context("failed to create the database (DATABASE_CREATE=true)")?;
    }
    let pool = match shared::kv::connect_postgres(settings).await {
        Ok(pool) => pool,
        Err(e) if !settings.database_create && shared::kv::is_missing_database(&e) => {
            let name = settings
                .database_url
                .parse::<sqlx::postgres::PgConnectOptions>()
                .ok()
                .and_then(|o| o.get_database().map(str::to_owned))
                .unwrap_or_default();
            anyhow::bail!(
                "database {name:?} (DATABASE_URL) does not exist and DATABASE_CREATE is off: \
                 create it, or set DATABASE_CREATE=true to let `api migrate` create it"
            );
        }
        Err(e) => return Err(anyhow::Error::new(e).context("failed to connect to Postgres")),
    };
    shared::MIGRATOR
        .run(&pool)
        .await
        .context("failed to apply migrations")?;
    tracing::info!("migrations applied");
    Ok(())
}

/// Connects to Postgres and Redis and serves HTTP until SIGTERM or SIGINT.
pub async fn run(settings: Settings) -> anyhow::Result<()> {
    if settings.run_migrations {
        migrate(&settings).await?;
    }
    let stop = shared::shutdown::shutdown_signal().context("failed to install signal handlers")?;
    let addr = settings.api_addr;
    let services = shared::services::Services::connect(settings).await?;
    let payment_mode = services.payments.mode_name();
    let app = app(AppState::new(services));
    tracing::info!(%addr, payment_mode, "api listening");
    Server::new(TcpListener::bind(addr))
        .run_with_graceful_shutdown(
            app,
            async move {
                let signal = stop.await;
                tracing::info!(%signal, "shutting down");
            },
            Some(std::time::Duration::from_secs(10)),
        )
        .await
        .context("server failed")?;
    tracing::info!("api stopped");
    Ok(())
}
