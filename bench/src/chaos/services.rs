//! The drill's own services: a private PostgreSQL cluster, a private `redis-server`, and the
//! system's processes (api, workers, scheduler) under a small supervisor, so every fault hits
//! only what the drill started.
//!
//! Every pid is also written to `<work dir>/pids/<name>.pid`, so `bench/run`'s exit trap can
//! stop what is left should the bench itself be killed.

use std::{
    fs::{self, File, OpenOptions},
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, ExitStatus, Stdio},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

use super::timeline::Timeline;

/// A port nobody listens on, searching from `from` (the drill's ports are stable across
/// restarts, so they are chosen once).
pub(crate) fn free_port(from: u16) -> anyhow::Result<u16> {
    (from..from.saturating_add(500))
        .find(|p| {
            TcpListener::bind(("127.0.0.1", *p)).is_ok()
                && TcpStream::connect_timeout(
                    &([127, 0, 0, 1], *p).into(),
                    Duration::from_millis(100),
                )
                .is_err()
        })
        .with_context(|| format!("no free port from {from}"))
}

/// Whether this process runs as root (read from `/proc`, without libc).
pub(crate) fn running_as_root() -> bool {
    fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().next().map(|u| u == "0"))
        })
        .unwrap_or(false)
}

fn run(cmd: &mut Command, what: &str) -> anyhow::Result<()> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("{what}: failed to run {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(())
}

fn write_pid(work: &Path, name: &str, pid: u32) {
    let dir = work.join("pids");
    let _ = fs::create_dir_all(&dir);
    let _ = fs::write(dir.join(format!("{name}.pid")), format!("{pid}\n"));
}

fn log_file(path: &Path) -> anyhow::Result<(File, File)> {
    let out = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("failed to open {}", path.display()))?;
    let err = out.try_clone()?;
    Ok((out, err))
}

/// Sends `signal` (e.g. `TERM`) to `pid` with `kill(1)`.
fn signal(pid: u32, signal: &str) -> anyhow::Result<()> {
    run(
        Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(pid.to_string()),
        &format!("kill -{signal} {pid}"),
    )
}

/// Waits up to `timeout` for `child` to exit.
async fn wait_exit(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Ok(Some(status)) = child.try_wait() {
            return Some(status);
        }
        if Instant::now() >= deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// --- PostgreSQL -----------------------------------------------------------------------------

/// A private PostgreSQL cluster in the work directory (fsync on, default durability), owned by
/// the `postgres` user when the drill runs as root (initdb refuses root).
pub(crate) struct Postgres {
    bin: PathBuf,
    data: PathBuf,
    log: PathBuf,
    pub port: u16,
    as_postgres: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` with `initdb` (or `PG_BIN_DIR`).
fn postgres_bin() -> anyhow::Result<PathBuf> {
    if let Ok(dir) = std::env::var("PG_BIN_DIR") {
        return Ok(PathBuf::from(dir));
    }
    let mut found: Vec<(u32, PathBuf)> = fs::read_dir("/usr/lib/postgresql")
        .context("no /usr/lib/postgresql (install PostgreSQL's server package, or set PG_BIN_DIR)")?
        .filter_map(|e| {
            let e = e.ok()?;
            let version: u32 = e.file_name().to_str()?.parse().ok()?;
            let bin = e.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    found.sort();
    found
        .pop()
        .map(|(_, bin)| bin)
        .context("no initdb under /usr/lib/postgresql/*/bin (or set PG_BIN_DIR)")
}

impl Postgres {
    /// `initdb` into `<work>/pg` and the settings: 127.0.0.1:`port` only, its socket in the
    /// data directory, trust authentication for the `postgres` superuser.
    pub(crate) fn init(work: &Path, port: u16) -> anyhow::Result<Self> {
        let bin = postgres_bin()?;
        let as_postgres = running_as_root();
        let data = work.join("pg");
        let logs = work.join("pglog");
        for dir in [&data, &logs] {
            fs::create_dir_all(dir)?;
        }
        if as_postgres {
            for dir in [&data, &logs] {
                run(
                    Command::new("chown").arg("postgres:postgres").arg(dir),
                    "chown the data directory to postgres",
                )?;
            }
        }
        let pg = Self {
            bin,
            data,
            log: logs.join("postgres.log"),
            port,
            as_postgres,
        };
        run(
            pg.command("initdb").arg("-D").arg(&pg.data).args([
                "-U",
                "postgres",
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
            ]),
            "initdb",
        )?;
        let settings = format!(
            "\n# bench chaos\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{}'\nmax_connections = 100\n",
            pg.data.display()
        );
        let conf = pg.data.join("postgresql.conf");
        let mut text = fs::read_to_string(&conf)?;
        text.push_str(&settings);
        fs::write(&conf, text)?;
        Ok(pg)
    }

    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(path);
            c
        } else {
            Command::new(path)
        }
    }

    fn pg_ctl(&self, action: &str, mode: Option<&str>) -> anyhow::Result<()> {
        let mut c = self.command("pg_ctl");
        c.arg("-D").arg(&self.data).arg("-l").arg(&self.log);
        c.args(["-w", "-t", "60"]);
        if let Some(mode) = mode {
            c.args(["-m", mode]);
        }
        c.arg(action);
        run(&mut c, &format!("pg_ctl {action}"))
    }

    pub(crate) fn start(&self) -> anyhow::Result<()> {
        self.pg_ctl("start", None)
    }

    /// `pg_ctl stop -m fast`: every session is terminated and the server stops after a
    /// checkpoint.
    pub(crate) fn stop_fast(&self) -> anyhow::Result<()> {
        self.pg_ctl("stop", Some("fast"))
    }

    pub(crate) fn stop(&self) {
        if !self.data.join("postmaster.pid").exists() {
            return;
        }
        if let Err(e) = self.pg_ctl("stop", Some("fast")) {
            eprintln!("chaos: {e:#}; stopping PostgreSQL immediately");
            let _ = self.pg_ctl("stop", Some("immediate"));
        }
    }

    pub(crate) fn url(&self, database: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{}/{database}", self.port)
    }

    pub(crate) fn log_path(&self) -> &Path {
        &self.log
    }
}

// --- Redis ----------------------------------------------------------------------------------

/// A private `redis-server` without persistence, restartable on the same port.
pub(crate) struct Redis {
    pub port: u16,
    work: PathBuf,
    log: PathBuf,
    child: Option<Child>,
}

impl Redis {
    pub(crate) fn new(work: &Path, out: &Path, port: u16) -> Self {
        Self {
            port,
            work: work.to_owned(),
            log: out.join("chaos-redis.log"),
            child: None,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts it and waits until it answers PING.
    pub(crate) async fn start(&mut self) -> anyhow::Result<()> {
        let (out, err) = log_file(&self.log)?;
        let child = Command::new("redis-server")
            .args(["--port", &self.port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.work)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .context("failed to start redis-server (is Redis installed?)")?;
        write_pid(&self.work, "redis", child.id());
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        let url = self.url();
        loop {
            if let Ok(client) = redis::Client::open(url.as_str())
                && let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("redis-server did not answer on {url} within 10 s");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGTERM (without persistence it just exits), SIGKILL after 5 s.
    pub(crate) async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = signal(child.id(), "TERM");
            if wait_exit(&mut child, Duration::from_secs(5))
                .await
                .is_none()
            {
                let _ = child.kill();
                let _ = child.wait();
            }
        }
    }
}

// --- The system's processes ----------------------------------------------------------------

/// Settings a developer's shell may carry that must not reach the drill's servers: error
/// reports, a metrics port two workers would fight over, real provider keys.
const INHERITED_BUT_NOT_WANTED: &[&str] = &[
    "SENTRY_DSN",
    "METRICS_ADDR",
    "STRIPE_PUBLISHABLE_KEY",
    "GOOGLE_MAPS_API_KEY",
    "GOOGLE_GEOCODING_URL",
    "ALLOWED_ORIGINS",
    "TRUSTED_PROXIES",
    "PORT",
];

/// One supervised process.
struct Proc {
    name: String,
    program: PathBuf,
    env: Vec<(String, String)>,
    log: PathBuf,
    child: Option<Child>,
    /// Stopped on purpose (a fault, or shutdown): the supervisor leaves it alone.
    held: bool,
    /// When it exited on its own (the supervisor restarts it a second later).
    exited_at: Option<Instant>,
}

/// The api, the workers and the scheduler, restarted like a supervisor would when one exits
/// on its own (recorded as an unexpected exit).
#[derive(Clone)]
pub(crate) struct Fleet {
    procs: Arc<Mutex<Vec<Proc>>>,
    work: PathBuf,
    timeline: Timeline,
    /// Unexpected exits: (process, exit status).
    exits: Arc<Mutex<Vec<(String, String)>>>,
}

impl Fleet {
    pub(crate) fn new(work: &Path, timeline: Timeline) -> Self {
        Self {
            procs: Arc::default(),
            work: work.to_owned(),
            timeline,
            exits: Arc::default(),
        }
    }

    /// Adds a process (not started yet).
    pub(crate) fn add(
        &self,
        name: &str,
        program: PathBuf,
        env: Vec<(String, String)>,
        log: PathBuf,
    ) {
        self.procs.lock().expect("fleet lock").push(Proc {
            name: name.to_owned(),
            program,
            env,
            log,
            child: None,
            held: true,
            exited_at: None,
        });
    }

    fn spawn(work: &Path, p: &mut Proc) -> anyhow::Result<u32> {
        let (out, err) = log_file(&p.log)?;
        let mut cmd = Command::new(&p.program);
        for name in INHERITED_BUT_NOT_WANTED {
            cmd.env_remove(name);
        }
        let child = cmd
            .envs(p.env.iter().map(|(k, v)| (k, v)))
            // No `.env` of the repository is read by the servers.
            .current_dir(work)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .with_context(|| format!("failed to start {}", p.program.display()))?;
        let pid = child.id();
        write_pid(work, &p.name, pid);
        p.child = Some(child);
        p.held = false;
        p.exited_at = None;
        Ok(pid)
    }

    /// Starts `name`; returns its pid.
    pub(crate) fn start(&self, name: &str) -> anyhow::Result<u32> {
        let mut procs = self.procs.lock().expect("fleet lock");
        let p = procs
            .iter_mut()
            .find(|p| p.name == name)
            .with_context(|| format!("no process {name}"))?;
        Self::spawn(&self.work, p)
    }

    fn take(&self, name: &str) -> Option<Child> {
        let mut procs = self.procs.lock().expect("fleet lock");
        let p = procs.iter_mut().find(|p| p.name == name)?;
        p.held = true;
        p.child.take()
    }

    /// SIGKILL, without any chance to clean up.
    pub(crate) async fn kill(&self, name: &str) -> Option<u32> {
        let mut child = self.take(name)?;
        let pid = child.id();
        let _ = child.kill();
        let _ = wait_exit(&mut child, Duration::from_secs(5)).await;
        Some(pid)
    }

    /// SIGTERM and wait for the exit (SIGKILL after `timeout`): (pid, exit status).
    pub(crate) async fn terminate(&self, name: &str, timeout: Duration) -> Option<(u32, String)> {
        let mut child = self.take(name)?;
        let pid = child.id();
        let _ = signal(pid, "TERM");
        let status = match wait_exit(&mut child, timeout).await {
            Some(s) => s.to_string(),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                format!("did not exit within {timeout:?}: killed")
            }
        };
        Some((pid, status))
    }

    /// Stops every process (SIGTERM, then SIGKILL after `timeout`): (name, exit status).
    pub(crate) async fn stop_all(&self, timeout: Duration) -> Vec<(String, String)> {
        let names: Vec<String> = {
            let procs = self.procs.lock().expect("fleet lock");
            procs.iter().map(|p| p.name.clone()).collect()
        };
        let stops = names.iter().map(|n| async move {
            let status = self.terminate(n, timeout).await.map(|(_, s)| s);
            (n.clone(), status)
        });
        futures::future::join_all(stops)
            .await
            .into_iter()
            .filter_map(|(n, s)| Some((n, s?)))
            .collect()
    }

    /// Processes that exited on their own so far: (name, exit status).
    pub(crate) fn unexpected_exits(&self) -> Vec<(String, String)> {
        self.exits.lock().expect("exits lock").clone()
    }

    /// One supervisor round: notes processes that exited on their own, restarts them a second
    /// later.
    pub(crate) fn supervise(&self) {
        let mut procs = self.procs.lock().expect("fleet lock");
        for p in procs.iter_mut().filter(|p| !p.held) {
            if let Some(child) = p.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                let pid = child.id();
                p.child = None;
                p.exited_at = Some(Instant::now());
                self.timeline.event(format!(
                    "{} (pid {pid}) exited on its own: {status}; restarting it in 1 s",
                    p.name
                ));
                self.exits
                    .lock()
                    .expect("exits lock")
                    .push((p.name.clone(), status.to_string()));
            }
            if p.child.is_none()
                && p.exited_at
                    .is_some_and(|at| at.elapsed() >= Duration::from_secs(1))
            {
                let what = match Self::spawn(&self.work, p) {
                    Ok(pid) => format!("{} restarted (pid {pid})", p.name),
                    Err(e) => format!("{} could not be restarted: {e:#}", p.name),
                };
                self.timeline.event(what);
            }
        }
    }
}
