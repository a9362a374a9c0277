//! What every process exports about itself, read at each scrape: `build_info{version,commit}`,
//! and, on Linux, `process_resident_memory_bytes`, `process_cpu_seconds_total` and
//! `process_start_time_seconds` (from `/proc`; elsewhere they are left out).

use std::{fmt, sync::OnceLock};

use prometheus_client::{
    collector::Collector,
    encoding::{DescriptorEncoder, EncodeMetric as _},
    metrics::{MetricType, counter::ConstCounter, gauge::ConstGauge},
};

/// The version the binaries were built as (every crate of the workspace has the same).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// The commit the binaries were built from: `GIT_COMMIT` at build time (the Dockerfile's build
/// argument), else `unknown`.
pub const COMMIT: &str = match option_env!("GIT_COMMIT") {
    Some(commit) if !commit.is_empty() => commit,
    _ => "unknown",
};

/// `/proc` counts CPU time in clock ticks of `USER_HZ`, which Linux fixes at 100 for every
/// architecture we deploy to (reading `sysconf(_SC_CLK_TCK)` would need `unsafe` libc calls).
const TICKS_PER_SECOND: f64 = 100.0;

/// The page size is 4 KiB on every platform we deploy to.
const PAGE_BYTES: i64 = 4096;

/// The collector of the process metrics (registered by `render`).
#[derive(Debug)]
pub(super) struct Process;

impl Collector for Process {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> fmt::Result {
        let build = [("version", VERSION), ("commit", COMMIT)];
        let mut info = encoder.encode_descriptor(
            "build_info",
            "Version and commit this process was built from (always 1).",
            None,
            MetricType::Gauge,
        )?;
        ConstGauge::new(1_i64).encode(info.encode_family(&build)?)?;

        if let Some(pages) = resident_pages() {
            let rss = encoder.encode_descriptor(
                "process_resident_memory_bytes",
                "Resident memory of this process.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(pages.saturating_mul(PAGE_BYTES)).encode(rss)?;
        }
        let stat = Stat::read();
        if let Some(cpu) = stat.as_ref().map(Stat::cpu_seconds) {
            // The encoder appends `_total` to a counter's name.
            let counter = encoder.encode_descriptor(
                "process_cpu_seconds",
                "User and system CPU time this process has used, in seconds.",
                None,
                MetricType::Counter,
            )?;
            ConstCounter::new(cpu).encode(counter)?;
        }
        if let Some(started) = start_time(stat.as_ref()) {
            let gauge = encoder.encode_descriptor(
                "process_start_time_seconds",
                "When this process started, in seconds since the Unix epoch.",
                None,
                MetricType::Gauge,
            )?;
            ConstGauge::new(started).encode(gauge)?;
        }
        Ok(())
    }
}

/// Resident pages, from `/proc/self/statm`.
fn resident_pages() -> Option<i64> {
    std::fs::read_to_string("/proc/self/statm")
        .ok()?
        .split_whitespace()
        .nth(1)?
        .parse()
        .ok()
}

/// The fields of `/proc/self/stat` used here, in clock ticks.
struct Stat {
    user: u64,
    system: u64,
    /// Since boot.
    started: u64,
}

impl Stat {
    fn read() -> Option<Self> {
        Self::parse(&std::fs::read_to_string("/proc/self/stat").ok()?)
    }

    /// `pid (comm) state ppid …`: the command may hold spaces and parentheses, so fields are
    /// counted from the last `)`; after it come field 3 (state) onwards, so field `n` is at
    /// `n - 3`: utime 14, stime 15, starttime 22 (proc(5)).
    fn parse(stat: &str) -> Option<Self> {
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3)?.parse::<u64>().ok();
        Some(Self {
            user: field(14)?,
            system: field(15)?,
            started: field(22)?,
        })
    }

    fn cpu_seconds(&self) -> f64 {
        (self.user + self.system) as f64 / TICKS_PER_SECOND
    }
}

/// The process start time (Unix seconds): boot time (`btime` of `/proc/stat`) plus the start
/// in ticks after boot. It never changes, so it is read once.
fn start_time(stat: Option<&Stat>) -> Option<f64> {
    static STARTED: OnceLock<Option<f64>> = OnceLock::new();
    *STARTED.get_or_init(|| {
        let boot: u64 = std::fs::read_to_string("/proc/stat")
            .ok()?
            .lines()
            .find_map(|line| line.strip_prefix("btime "))?
            .trim()
            .parse()
            .ok()?;
        Some(boot as f64 + stat?.started as f64 / TICKS_PER_SECOND)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stat_fields_are_counted_from_the_end_of_the_command() {
        let line = "4242 (my (odd) cmd) S 1 4242 4242 0 -1 4194560 523 0 0 0 \
                    250 75 0 0 20 0 3 0 123456 12345678 900 18446744073709551615";

        let stat = Stat::parse(line).expect("parsed");

        assert_eq!((stat.user, stat.system, stat.started), (250, 75, 123_456));
        assert_eq!(stat.cpu_seconds(), 3.25);
    }

    #[test]
    fn this_process_reports_its_memory_cpu_and_start_time() {
        let text = super::super::render(&[]);

        let value = |name: &str| -> f64 {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .unwrap_or_else(|| panic!("no {name} in:\n{text}"))
                .parse()
                .expect("a number")
        };
        assert!(value("process_resident_memory_bytes") > 0.0);
        assert!(value("process_cpu_seconds_total") >= 0.0);
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_secs_f64();
        let started = value("process_start_time_seconds");
        // Boot time is whole seconds and start ticks are 10 ms: a little slack either way.
        assert!(
            started > now - 3600.0 && started <= now + 2.0,
            "{started} vs {now}"
        );
        assert!(
            text.contains("# TYPE process_cpu_seconds_total counter\n"),
            "{text}"
        );
        assert!(
            text.contains(&format!(
                "build_info{{version=\"{VERSION}\",commit=\"{COMMIT}\"}} 1\n"
            )),
            "{text}"
        );
    }
}
