//! The process stop signal every long-running binary waits for.
//!
//! Kubernetes, systemd and docker stop a process with SIGTERM; a developer presses Ctrl-C
//! (SIGINT). `tokio::signal::ctrl_c()` only covers the second, so both are handled here.

use std::{fmt, future::Future, io};

use tokio::signal::unix::{SignalKind, signal};

/// Which signal asked the process to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGTERM: the orchestrator stops or replaces the process.
    Terminate,
    /// SIGINT: Ctrl-C in a terminal.
    Interrupt,
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StopSignal::Terminate => "SIGTERM",
            StopSignal::Interrupt => "SIGINT",
        })
    }
}

/// Installs SIGTERM and SIGINT handlers now and returns a future that resolves on the first of
/// them.
///
/// The handlers are installed eagerly, not on the future's first poll, so that a signal arriving
/// between start-up and the moment the process starts waiting is not fatal: without a handler,
/// SIGTERM kills the process before it can drain its work. Must be called inside a Tokio runtime.
pub fn shutdown_signal() -> io::Result<impl Future<Output = StopSignal> + Send + 'static> {
    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    Ok(async move {
        tokio::select! {
            _ = terminate.recv() => StopSignal::Terminate,
            _ = interrupt.recv() => StopSignal::Interrupt,
        }
    })
}
