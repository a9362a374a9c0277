//! CPU and memory of the server processes, read from `/proc` before and after the measured phase.
//!
//! CPU is `utime + stime` in clock ticks. For PostgreSQL the children's `cutime + cstime` is added
//! too: backends and autovacuum workers that exit during the phase are reaped by the postmaster, so
//! their CPU moves into its `cutime` instead of vanishing from the sum.

use std::{collections::BTreeMap, fs};

use anyhow::{Context, bail};
use serde::Serialize;

/// One process's CPU counters, in clock ticks.
#[derive(Debug, Clone, Copy, Default)]
struct Ticks {
    own: u64,
    children: u64,
}

fn read_ticks(pid: u32) -> Option<Ticks> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may contain spaces and parentheses; the fields start after the last ')'.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<u64> = rest
        .split_whitespace()
        .skip(11) // state .. cmajflt: utime is field 14, the 12th after the name
        .take(4)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    match fields.as_slice() {
        [utime, stime, cutime, cstime] => Some(Ticks {
            own: utime + stime,
            children: cutime + cstime,
        }),
        _ => None,
    }
}

fn status_kb(pid: u32, key: &str) -> Option<u64> {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}

fn comm(pid: u32) -> Option<String> {
    Some(
        fs::read_to_string(format!("/proc/{pid}/comm"))
            .ok()?
            .trim()
            .to_owned(),
    )
}

/// Every pid whose command name is exactly `name` (like `pgrep -x name`).
pub(crate) fn pids_named(name: &str) -> Vec<u32> {
    let Ok(dir) = fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut pids: Vec<u32> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|pid| comm(*pid).as_deref() == Some(name))
        .collect();
    pids.sort_unstable();
    pids
}

/// `pid` if given (and alive), else the only process named `name`.
pub(crate) fn find_pid(name: &str, given: Option<u32>) -> anyhow::Result<u32> {
    if let Some(pid) = given {
        if read_ticks(pid).is_none() {
            bail!("no process with pid {pid} ({name})");
        }
        return Ok(pid);
    }
    match pids_named(name).as_slice() {
        [pid] => Ok(*pid),
        [] => bail!("no process named {name:?} is running; start it or pass --{name}-pid"),
        many => bail!("several processes are named {name:?} ({many:?}); pass --{name}-pid"),
    }
}

/// Clock ticks per second (`getconf CLK_TCK`; 100 on Linux in practice).
pub(crate) fn clock_ticks_per_sec() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok()?.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// The processes whose CPU is sampled.
#[derive(Debug, Clone)]
pub(crate) struct Targets {
    pub api: u32,
    pub worker: u32,
    /// The database the servers use: its backends are counted separately from the rest of the
    /// cluster (other databases on a shared server are other people's load).
    pub database: String,
}

/// CPU counters (ticks) at one instant.
#[derive(Debug, Clone, Default)]
pub(crate) struct Sample {
    api: u64,
    worker: u64,
    postgres_all: u64,
    postgres_this_db: BTreeMap<u32, u64>,
    redis: u64,
    bench: u64,
    machine_busy: u64,
    machine_total: u64,
}

fn machine_ticks() -> (u64, u64) {
    let Ok(stat) = fs::read_to_string("/proc/stat") else {
        return (0, 0);
    };
    let Some(line) = stat.lines().find(|l| l.starts_with("cpu ")) else {
        return (0, 0);
    };
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    let total: u64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0) + v.get(4).copied().unwrap_or(0);
    (total - idle, total)
}

fn is_backend_of(pid: u32, database: &str) -> bool {
    // Backend titles read "postgres: 15/main: <user> <database> <host>(<port>) <state>".
    fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| {
        String::from_utf8_lossy(&c)
            .split_whitespace()
            .any(|w| w == database)
    })
}

/// Reads every counter now.
pub(crate) fn sample(t: &Targets) -> Sample {
    let own = |pid: u32| read_ticks(pid).map_or(0, |t| t.own);
    let mut s = Sample {
        api: own(t.api),
        worker: own(t.worker),
        bench: own(std::process::id()),
        ..Sample::default()
    };
    for pid in pids_named("postgres") {
        if let Some(ticks) = read_ticks(pid) {
            s.postgres_all += ticks.own + ticks.children;
            if is_backend_of(pid, &t.database) {
                s.postgres_this_db.insert(pid, ticks.own);
            }
        }
    }
    s.redis = pids_named("redis-server").into_iter().map(own).sum();
    (s.machine_busy, s.machine_total) = machine_ticks();
    s
}

/// CPU seconds each part used between two samples.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct CpuUsage {
    pub api_s: f64,
    pub worker_s: f64,
    /// The whole PostgreSQL cluster (also other databases' load, if any).
    pub postgres_s: f64,
    /// Only the backends connected to the servers' database (live at the end of the phase).
    pub postgres_this_db_s: f64,
    pub redis_s: f64,
    /// api + worker + postgres + redis.
    pub server_total_s: f64,
    /// The load generator itself (it shares the machine).
    pub bench_s: f64,
    /// Busy CPU seconds of the whole machine, every process included.
    pub machine_busy_s: f64,
    /// Average busy cores over the phase.
    pub machine_busy_cores: f64,
    /// Machine busy time not accounted for by the servers and the bench: other people's
    /// processes (builds, tests) sharing the machine. Large values make every figure noisy.
    pub other_processes_s: f64,
}

/// The difference `after - before`.
pub(crate) fn usage(before: &Sample, after: &Sample, hz: f64) -> CpuUsage {
    let secs = |b: u64, a: u64| a.saturating_sub(b) as f64 / hz;
    let this_db: u64 = after
        .postgres_this_db
        .iter()
        .map(|(pid, a)| a.saturating_sub(before.postgres_this_db.get(pid).copied().unwrap_or(0)))
        .sum();
    let api_s = secs(before.api, after.api);
    let worker_s = secs(before.worker, after.worker);
    let postgres_s = secs(before.postgres_all, after.postgres_all);
    let redis_s = secs(before.redis, after.redis);
    let machine_total = after.machine_total.saturating_sub(before.machine_total);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let bench_s = secs(before.bench, after.bench);
    let machine_busy_s = secs(before.machine_busy, after.machine_busy);
    let server_total_s = api_s + worker_s + postgres_s + redis_s;
    CpuUsage {
        api_s,
        worker_s,
        postgres_s,
        postgres_this_db_s: this_db as f64 / hz,
        redis_s,
        server_total_s,
        bench_s,
        machine_busy_s,
        other_processes_s: (machine_busy_s - server_total_s - bench_s).max(0.0),
        machine_busy_cores: if machine_total == 0 {
            0.0
        } else {
            after.machine_busy.saturating_sub(before.machine_busy) as f64 / machine_total as f64
                * cores
        },
    }
}

/// Resident memory of one process, in MiB.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct Memory {
    /// `VmHWM`: the peak resident set since the process started.
    pub peak_rss_mib: f64,
    /// `VmRSS` now.
    pub rss_mib: f64,
}

/// The memory figures of `pid`.
pub(crate) fn memory(pid: u32) -> anyhow::Result<Memory> {
    let kb = |key| {
        status_kb(pid, key)
            .with_context(|| format!("could not read {key} of pid {pid} (did it exit?)"))
    };
    Ok(Memory {
        peak_rss_mib: kb("VmHWM")? as f64 / 1024.0,
        rss_mib: kb("VmRSS")? as f64 / 1024.0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_process() {
        let me = std::process::id();
        assert!(read_ticks(me).is_some());
        assert!(memory(me).unwrap().peak_rss_mib > 0.0);
        let (busy, total) = machine_ticks();
        assert!(total >= busy && total > 0);
    }
}
