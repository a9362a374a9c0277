//! Spawning the compiled worker binary and reading its JSON log lines.

use std::{
    io::{BufRead, BufReader, Read},
    process::{Child, Command, ExitStatus, Stdio},
    sync::mpsc::{self, Receiver, RecvTimeoutError},
    thread,
    time::{Duration, Instant},
};

/// The Postgres server of the tests (`TEST_DATABASE_URL`, as in `.ci/run` and test-support);
/// the `postgres` database always exists, and only a reachable one is needed, not a schema.
pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".to_owned())
}

/// The Redis of the tests (`TEST_REDIS_URL`).
pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

/// A namespace no other test (or test run) uses, so tests never see each other's queues.
pub fn unique_prefix() -> String {
    format!("test-{}", uuid::Uuid::new_v4().simple())
}

/// A running worker process whose stdout and stderr lines are collected as they appear.
pub struct WorkerProcess {
    child: Child,
    lines: Receiver<String>,
    /// Every line read so far, for assertions and failure messages.
    pub output: Vec<String>,
}

impl WorkerProcess {
    /// Starts the worker binary with a fresh Redis prefix, JSON logs and `overrides` on top.
    pub fn spawn(overrides: &[(&str, &str)]) -> Self {
        let mut command = Command::new(env!("CARGO_BIN_EXE_worker"));
        command
            // Somewhere without a `.env` file, so only the variables below apply.
            .current_dir(std::env::temp_dir())
            .env("APP_ENV", "dev")
            .env("DATABASE_URL", database_url())
            .env("REDIS_URL", redis_url())
            .env("REDIS_PREFIX", unique_prefix())
            .env("WORKER_QUEUES", "all")
            .env("LOG_FORMAT", "json")
            .env("RUST_LOG", "info")
            .envs(overrides.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("the worker binary starts");
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
                        "worker exited before logging {message:?}; output: {:#?}",
                        self.output
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
        self.child.kill().expect("SIGKILL the worker");
        self.child.wait().expect("reap the worker");
    }

    /// Peak and current resident memory in bytes (`VmHWM`, `VmRSS` of `/proc/<pid>/status`).
    pub fn memory(&self) -> (u64, u64) {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id()))
            .expect("the worker is running");
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
        test_support::http_get(addr, path)
    }

    /// Waits for the process to exit, then collects the rest of its output.
    pub fn wait_for_exit(&mut self, timeout: Duration) -> ExitStatus {
        let deadline = Instant::now() + timeout;
        let status = loop {
            if let Some(status) = self.child.try_wait().expect("the worker can be waited for") {
                break status;
            }
            assert!(
                Instant::now() < deadline,
                "worker still running after {timeout:?}; output: {:#?}",
                self.output
            );
            thread::sleep(Duration::from_millis(20));
        };
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

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        // A failed assertion must not leave a worker running after the tests.
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
