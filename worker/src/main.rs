//! Entry point of the worker binary: settings, telemetry, [`worker::run`], exit status.

use std::process::ExitCode;

use shared::config::Settings;

fn main() -> ExitCode {
    shared::allocator::run(serve())
}

async fn serve() -> ExitCode {
    let settings = match Settings::from_env() {
        Ok(settings) => settings,
        Err(e) => {
            // No subscriber yet: its format is one of the settings that could not be read.
            eprintln!("worker: {e}");
            return ExitCode::FAILURE;
        }
    };
    shared::telemetry::init("info", settings.log_format);
    shared::payments::install_crypto_provider();
    // Kept until main returns: dropping it flushes the reports still queued.
    let _sentry =
        shared::telemetry::init_sentry(&settings.sentry, "worker", env!("CARGO_PKG_VERSION"));
    report_exit(worker::run(settings).await)
}

/// Logs a failure once, with its cause chain, and turns it into the process exit status.
fn report_exit(outcome: anyhow::Result<()>) -> ExitCode {
    match outcome {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!(error.message = %e, error.cause_chain = ?e, "worker failed");
            ExitCode::FAILURE
        }
    }
}
