//! `api` serves HTTP; `api migrate` applies migrations and exits (creating the database first
//! when it is missing and `DATABASE_CREATE` is on).

use shared::config::Settings;

fn main() -> std::process::ExitCode {
    shared::allocator::run(serve())
}

async fn serve() -> std::process::ExitCode {
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("configuration error: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    shared::telemetry::init("info,sqlx=warn", settings.log_format);
    shared::payments::install_crypto_provider();
    // Kept until main returns: dropping it flushes the reports still queued.
    let _sentry =
        shared::telemetry::init_sentry(&settings.sentry, "api", env!("CARGO_PKG_VERSION"));
    let result = match std::env::args().nth(1).as_deref() {
        None | Some("serve") => api::run(settings).await,
        Some("migrate") => api::migrate(&settings).await,
        Some(other) => Err(anyhow::anyhow!(
            "unknown command {other:?}; expected `serve` or `migrate`"
        )),
    };
    match result {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "api exited with an error");
            std::process::ExitCode::FAILURE
        }
    }
}
