//! Spawning the compiled binaries (worker, scheduler) and reading their JSON log lines.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

use crate::{admin_database_url, redis_url};

/// A namespace no other test (or test run) uses, so tests never see each other's queues.
pub fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// A running binary whose stdout and stderr lines are collected as they appear. Killed when
/// dropped, so a failed assertion never leaves a process behind.
pub struct BinaryProcess {
    name: &'static str,
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far, for assertions and failure messages.
    pub output: Vec<String>,
}

impl BinaryProcess {
    /// Starts the binary at `path` (`env!("CARGO_BIN_EXE_<name>")`) against the test Postgres
    /// and Redis, with a fresh Redis prefix, JSON logs and `overrides` on top.
    pub fn spawn(name: &'static str, path: &str, overrides: &[(&str, &str)]) -> Self {
        Self::spawn_with_args(name, path, &[], overrides)
    }

    /// Like [`BinaryProcess::spawn`], with command-line arguments (`api migrate`).
    pub fn spawn_with_args(
        name: &'static str,
        path: &str,
        args: &[&str],
        overrides: &[(&str, &str)],
    ) -> Self {
        let mut command = Command::new(path);
        command
            .args(args)
            // Somewhere without a `.env` file, so only the variables below apply.
            .current_dir(std::env::temp_dir())
            .env("APP_ENV", "dev")
            .env("DATABASE_URL", admin_database_url())
            .env("REDIS_URL", redis_url())
            .env("REDIS_PREFIX", unique_prefix())
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(overrides.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command
            .spawn()
            .unwrap_or_else(|e| panic!("the {name} binary does not start: {e}"));
        let (tx, lines) = mpsc::channel();
        for stream in [
            child
                .stdout
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
            child
                .stderr
                .take()
                .map(|s| Box::new(s) as Box<dyn Read + Send>),
        ]
        .into_iter()
        .flatten()
        {
            let tx = tx.clone();
            thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Self {
            name,
            child,
            lines,
            output: Vec::new(),
        }
    }

    /// Waits until a JSON log line with this `message` appears and returns it.
    pub fn wait_for_message(&mut self, message: &str, timeout: Duration) -> serde_json::Value {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            match self.lines.recv_timeout(remaining) {
                Ok(line) => {
                    let parsed = serde_json::from_str::<serde_json::Value>(&line).ok();
                    self.output.push(line);
                    if let Some(event) = parsed.filter(|e| e["message"] == message) {
                        return event;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!(
                        "no {message:?} log within {timeout:?}; output: {:#?}",
                        self.output
                    )
                }
                Err(RecvTimeoutError::Disconnected) => {
                    panic!(
                        "{} exited before logging {message:?}; output: {:#?}",
                        self.name, self.output
                    )
                }
            }
        }
    }

    /// Sends a signal by name (`TERM`, `INT`) with the system `kill`, as an orchestrator would.
    pub fn signal(&self, name: &str) {
        let status = Command::new("kill")
            .args(["-s", name, &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -s {name} failed");
    }

    /// Kills the process with SIGKILL, as the OOM killer or a lost node would: no draining, no
    /// clean-up, no chance to hand its work back.
    pub fn kill(&mut self) {
        self.child.kill().expect("SIGKILL the process");
        self.child.wait().expect("reap the process");
    }

    /// Collects the lines printed so far, without waiting.
    pub fn drain(&mut self) {
        self.output.extend(self.lines.try_iter());
    }

    /// The collected JSON log lines with this `message`.
    pub fn messages(&self, message: &str) -> Vec<serde_json::Value> {
        self.output
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .filter(|event| event["message"] == message)
            .collect()
    }

    /// Peak and current resident memory in bytes (`VmHWM`, `VmRSS` of `/proc/<pid>/status`).
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the process is running");
        let field = |name: &str| {
            status
                .lines()
                .find_map(|line| line.strip_prefix(name))
                .and_then(|rest| rest.split_whitespace().next()?.parse::<u64>().ok())
                .map(|kib| kib * 1024)
                .unwrap_or_else(|| panic!("no {name} in {status}"))
        };
        (field("VmHWM:"), field("VmRSS:"))
    }

    /// `GET path` on the metrics listener this process logged (`METRICS_ADDR=127.0.0.1:0`).
    pub fn scrape(&self, path: &str) -> String {
        let event = self.logged_message("metrics listening");
        let addr = event["metrics.addr"].as_str().expect("metrics.addr");
        crate::http_get(addr, path)
    }

    /// Waits for the process to exit, then collects the rest of its output.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let what = format!("{} to exit", self.name);
        let status = crate::eventually_blocking(&what, timeout, || {
            match self
                .child
                .try_wait()
                .expect("the process can be waited for")
            {
                Some(status) => Ok(status),
                None => {
                    self.output.extend(self.lines.try_iter());
                    Err(format!("still running; output: {:#?}", self.output))
                }
            }
        });
        // The pipes close at exit, so this ends once the reader threads have sent everything.
        self.output.extend(self.lines.iter());
        status
    }

    /// The already collected JSON log line with this `message`, e.g. after the process exited.
    pub fn logged_message(&self, message: &str) -> serde_json::Value {
        self.output
            .iter()
            .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
            .find(|event| event["message"] == message)
            .unwrap_or_else(|| panic!("no {message:?} log; output: {:#?}", self.output))
    }

    /// Whether any collected line contains `text`.
    pub fn logged(&self, text: &str) -> bool {
        self.output.iter().any(|line| line.contains(text))
    }
}

impl Drop for BinaryProcess {
    fn drop(&mut self) {
        // A failed assertion must not leave a process running after the tests.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
