//! The compiled scheduler binary as a test process (see `test_support::process`).

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

/// A running scheduler process whose output lines are collected as they appear.
pub struct SchedulerProcess(BinaryProcess);

impl SchedulerProcess {
    /// Starts the scheduler binary with a fresh Redis prefix, JSON logs and `overrides` on top.
    pub fn spawn(overrides: &[(&str, &str)]) -> Self {
        Self(BinaryProcess::spawn(
            "scheduler",
            env!("CARGO_BIN_EXE_scheduler"),
            overrides,
        ))
    }
}

impl Deref for SchedulerProcess {
    type Target = BinaryProcess;

    fn deref(&self) -> &BinaryProcess {
        &self.0
    }
}

impl DerefMut for SchedulerProcess {
    fn deref_mut(&mut self) -> &mut BinaryProcess {
        &mut self.0
    }
}
