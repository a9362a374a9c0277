//! The compiled worker binary as a test process (see `test_support::process`).

use std::ops::{Deref, DerefMut};

use test_support::process::BinaryProcess;
pub use test_support::process::unique_prefix;

/// The Postgres server of the tests (`TEST_DATABASE_URL`, as in `.ci/run` and test-support);
/// the `postgres` database always exists, and only a reachable one is needed, not a schema.
pub fn database_url() -> String {
    test_support::admin_database_url()
}

/// The Redis of the tests (`TEST_REDIS_URL`).
pub fn redis_url() -> String {
    test_support::redis_url()
}

/// Settings of an in-process worker: the test PostgreSQL and Redis, Redis prefix `prefix`, and
/// `extra` on top.
pub fn settings(prefix: &str, extra: &[(&str, &str)]) -> shared::config::Settings {
    let mut vars = vec![
        ("DATABASE_URL", database_url()),
        ("REDIS_URL", redis_url()),
        ("REDIS_PREFIX", prefix.to_owned()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (*k, (*v).to_owned())));
    shared::config::Settings::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| *name == k)
            .map(|(_, v)| v.clone())
    })
    .expect("test settings are valid")
}

/// A running worker process whose output lines are collected as they appear.
pub struct WorkerProcess(BinaryProcess);

impl WorkerProcess {
    /// Starts the worker binary with a fresh Redis prefix, JSON logs and `overrides` on top.
    pub fn spawn(overrides: &[(&str, &str)]) -> Self {
        let mut env = vec![("WORKER_QUEUES", "all")];
        env.extend_from_slice(overrides);
        Self(BinaryProcess::spawn(
            "worker",
            env!("CARGO_BIN_EXE_worker"),
            &env,
        ))
    }
}

impl Deref for WorkerProcess {
    type Target = BinaryProcess;

    fn deref(&self) -> &BinaryProcess {
        &self.0
    }
}

impl DerefMut for WorkerProcess {
    fn deref_mut(&mut self) -> &mut BinaryProcess {
        &mut self.0
    }
}
