//! TLS to PostgreSQL and Redis, against private servers started here (the shared test servers
//! speak plain TCP and are not reconfigured): a temporary PostgreSQL cluster that accepts TLS
//! only (`hostssl`, and `hostnossl … reject`) and a `redis-server` with nothing but a TLS port,
//! both presenting a certificate for 127.0.0.1 signed by a CA made for the run.
//!
//! Needs `openssl`, PostgreSQL's server binaries (`/usr/lib/postgresql/<version>/bin`) and a
//! `redis-server` built with TLS; the tests are skipped, saying so, only when one is missing.
//! As root (CI), the cluster runs as the `postgres` user, since `initdb` refuses root.

use std::{
    collections::HashMap,
    net::{TcpListener, TcpStream},
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    sync::{Arc, Mutex, Weak},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use shared::{
    config::Settings,
    queue::{JobTask, pushed_channel, queue_name, redis_config},
    services::Services,
};
use sqlx::{Connection, PgConnection};
use uuid::Uuid;

const STARTUP: Duration = Duration::from_secs(30);

/// The servers every test here uses: started by the first test that asks, stopped when the last
/// one holding them ends (pass or fail), so the run leaves no process or directory behind.
static SERVERS: Mutex<Weak<Servers>> = Mutex::new(Weak::new());

fn servers() -> Option<Arc<Servers>> {
    let mut shared = SERVERS.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(servers) = shared.upgrade() {
        return Some(servers);
    }
    let servers = Arc::new(Servers::start()?);
    *shared = Arc::downgrade(&servers);
    Some(servers)
}

struct Servers {
    dir: PathBuf,
    /// The CA that signed both servers' certificate.
    ca: PathBuf,
    /// A CA that signed nothing here: trusting only it must fail.
    other_ca: PathBuf,
    postgres: Option<Postgres>,
    redis: Option<Child>,
    postgres_port: u16,
    redis_port: u16,
}

impl Servers {
    /// `None` (after saying why) when a tool the servers need is not installed.
    fn start() -> Option<Self> {
        let Some(pg_bin) = postgres_bin() else {
            eprintln!("SKIPPED: no PostgreSQL server binaries under /usr/lib/postgresql/*/bin");
            return None;
        };
        if !runs("openssl", &["version"]) {
            eprintln!("SKIPPED: no openssl to make the test certificates");
            return None;
        }
        if !runs("redis-server", &["--version"]) {
            eprintln!("SKIPPED: no redis-server (apt-get install redis-server)");
            return None;
        }
        let dir = std::env::temp_dir().join(format!("mp-tls-{}", Uuid::new_v4().simple()));
        std::fs::create_dir(&dir).expect("create the test directory");
        let mut servers = Self {
            ca: dir.join("ca.pem"),
            other_ca: dir.join("other-ca.pem"),
            dir,
            postgres: None,
            redis: None,
            postgres_port: free_port(),
            redis_port: free_port(),
        };
        servers.make_certificates();
        servers.postgres = Some(Postgres::start(
            &pg_bin,
            &servers.dir,
            servers.postgres_port,
        ));
        servers.redis = servers.start_redis();
        servers.redis.as_ref()?;
        Some(servers)
    }

    fn path(&self, file: &str) -> String {
        self.dir.join(file).display().to_string()
    }

    /// A CA, a server certificate it signs for 127.0.0.1 and localhost, and an unrelated CA.
    fn make_certificates(&self) {
        for (name, subject) in [("ca", "/CN=mp test CA"), ("other-ca", "/CN=mp other CA")] {
            let (key, cert) = (
                self.path(&format!("{name}.key")),
                self.path(&format!("{name}.pem")),
            );
            let mut args = new_key(&key, &cert, subject);
            args.extend(["-x509", "-days", "2"]);
            openssl(&args);
        }
        let (key, csr) = (self.path("server.key"), self.path("server.csr"));
        openssl(&new_key(&key, &csr, "/CN=localhost"));
        let ext = self.path("server.ext");
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=critical,CA:FALSE\n\
             keyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n",
        )
        .expect("write the certificate extensions");
        let (ca, ca_key, cert) = (
            self.path("ca.pem"),
            self.path("ca.key"),
            self.path("server.pem"),
        );
        openssl(&[
            "x509", "-req", "-in", &csr, "-CA", &ca, "-CAkey", &ca_key, "-out", &cert, "-days",
            "2", "-extfile", &ext,
        ]);
    }

    /// `None` (after saying why) when this redis-server was built without TLS.
    fn start_redis(&self) -> Option<Child> {
        let log = self.dir.join("redis.log");
        let port = self.redis_port.to_string();
        let (cert, key, ca) = (
            self.path("server.pem"),
            self.path("server.key"),
            self.path("ca.pem"),
        );
        let mut child = Command::new("redis-server")
            .args(["--port", "0", "--tls-port", &port, "--bind", "127.0.0.1"])
            .args(["--tls-cert-file", &cert, "--tls-key-file", &key])
            .args(["--tls-ca-cert-file", &ca, "--tls-auth-clients", "no"])
            .args(["--save", "", "--appendonly", "no"])
            .args(["--logfile", &log.display().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let deadline = Instant::now() + STARTUP;
        while TcpStream::connect(("127.0.0.1", self.redis_port)).is_err() {
            if let Ok(Some(status)) = child.try_wait() {
                let output = std::fs::read_to_string(&log).unwrap_or_default();
                if output.to_lowercase().contains("tls") {
                    eprintln!("SKIPPED: this redis-server has no TLS support ({status}): {output}");
                    return None;
                }
                panic!("redis-server exited ({status}): {output}");
            }
            assert!(Instant::now() < deadline, "redis-server did not listen");
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(child)
    }

    /// The private cluster's `postgres` database with libpq-style TLS parameters.
    fn database_url(&self, params: &str) -> String {
        format!(
            "postgres://postgres@127.0.0.1:{}/postgres?{params}",
            self.postgres_port
        )
    }

    fn redis_url(&self) -> String {
        format!("rediss://127.0.0.1:{}", self.redis_port)
    }
}

impl Drop for Servers {
    fn drop(&mut self) {
        if let Some(mut redis) = self.redis.take() {
            let _ = redis.kill();
            let _ = redis.wait();
        }
        drop(self.postgres.take());
        if let Err(e) = std::fs::remove_dir_all(&self.dir) {
            eprintln!("warning: could not remove {}: {e}", self.dir.display());
        }
    }
}

/// A throw-away cluster in `<dir>/data`, stopped when dropped.
struct Postgres {
    bin: PathBuf,
    data: PathBuf,
}

impl Postgres {
    fn start(bin: &Path, dir: &Path, port: u16) -> Self {
        if is_root() {
            // initdb refuses root; the cluster's files (and the key, 0600) belong to postgres.
            let status = Command::new("chown")
                .args(["-R", "postgres:postgres"])
                .arg(dir)
                .status()
                .expect("chown runs");
            assert!(status.success(), "chown the test directory to postgres");
        }
        let data = dir.join("data");
        let this = Self {
            bin: bin.to_owned(),
            data,
        };
        let initdb = this
            .command("initdb")
            .arg("-D")
            .arg(&this.data)
            .args(["-U", "postgres", "-A", "trust", "--no-locale", "-E", "UTF8"])
            .arg("--no-sync")
            .output()
            .expect("initdb runs");
        assert!(
            initdb.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&initdb.stderr)
        );
        let conf = format!(
            "\nlisten_addresses = '127.0.0.1'\nport = {port}\nunix_socket_directories = '{dir}'\n\
             ssl = on\nssl_cert_file = '{dir}/server.pem'\nssl_key_file = '{dir}/server.key'\n\
             fsync = off\nmax_connections = 20\nshared_buffers = 16MB\n",
            dir = dir.display()
        );
        append(&this.data.join("postgresql.conf"), &conf);
        // TLS or nothing over TCP; the socket (in the test directory) is for pg_ctl alone.
        std::fs::write(
            this.data.join("pg_hba.conf"),
            "local all all trust\n\
             hostssl all all 127.0.0.1/32 trust\n\
             hostnossl all all 127.0.0.1/32 reject\n",
        )
        .expect("write pg_hba.conf");
        let started = this
            .command("pg_ctl")
            .arg("-D")
            .arg(&this.data)
            .arg("-l")
            .arg(dir.join("postgres.log"))
            .args(["-w", "-t", "30", "start"])
            .stdout(Stdio::null())
            .output()
            .expect("pg_ctl runs");
        let log = std::fs::read_to_string(dir.join("postgres.log")).unwrap_or_default();
        assert!(
            started.status.success(),
            "pg_ctl start: {}\n{log}",
            String::from_utf8_lossy(&started.stderr)
        );
        this
    }

    /// `tool` from the cluster's binaries, run as `postgres` when we are root (from the
    /// cluster's directory, which that user can always enter).
    fn command(&self, tool: &str) -> Command {
        let path = self.bin.join(tool);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(path);
            command
        } else {
            Command::new(path)
        };
        if let Some(dir) = self.data.parent() {
            command.current_dir(dir);
        }
        command
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let stopped = self
            .command("pg_ctl")
            .arg("-D")
            .arg(&self.data)
            .args(["-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if !stopped.is_ok_and(|s| s.success()) {
            eprintln!(
                "warning: could not stop the cluster in {}",
                self.data.display()
            );
        }
    }
}

/// The newest installed PostgreSQL's server binaries.
fn postgres_bin() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_str()?.parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0")
}

/// `openssl req` arguments for a new key in `key` and a request (or, with `-x509`, a
/// certificate) for `subject` in `out`. P-256: made in milliseconds, and verified by ring.
fn new_key<'a>(key: &'a str, out: &'a str, subject: &'a str) -> Vec<&'a str> {
    let mut args = vec![
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
    ];
    args.extend(["-nodes", "-keyout", key, "-out", out, "-subj", subject]);
    args
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn append(path: &Path, text: &str) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(path)
        .expect("open for appending");
    file.write_all(text.as_bytes()).expect("append");
}

fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

fn settings(vars: &[(&str, String)]) -> Settings {
    let map: HashMap<&str, &str> = vars.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Settings::from_lookup(|k| map.get(k).map(|v| (*v).to_owned())).expect("settings")
}

async fn is_tls(conn: &mut PgConnection) -> bool {
    sqlx::query_scalar("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
        .fetch_one(conn)
        .await
        .expect("pg_stat_ssl")
}

#[tokio::test]
async fn the_app_connects_to_postgres_and_redis_over_verified_tls() {
    let Some(servers) = servers() else { return };
    let prefix = format!("tls-{}", Uuid::new_v4().simple());
    let ca = servers.ca.display().to_string();
    let settings = settings(&[
        (
            "DATABASE_URL",
            servers.database_url(&format!("sslmode=verify-full&sslrootcert={ca}")),
        ),
        ("DATABASE_MAX_CONNECTIONS", "2".into()),
        ("REDIS_URL", servers.redis_url()),
        ("REDIS_CA_CERT", ca.clone()),
        ("REDIS_PREFIX", prefix.clone()),
    ]);

    let services = Services::connect(settings).await.expect("connect over TLS");

    // PostgreSQL: a pool connection is encrypted, and real work runs over it.
    let mut conn = services.pool.acquire().await.expect("a pooled connection");
    assert!(is_tls(&mut conn).await, "the pool's connection is not TLS");
    let answer: i32 = sqlx::query_scalar("SELECT 40 + 2")
        .fetch_one(&mut *conn)
        .await
        .expect("a query");
    assert_eq!(answer, 42);
    drop(conn);

    // Redis: the shared connection, a subscription opened from the process's client (as the
    // job waiter and the worker wake-ups are), and a push through the queue.
    let pong: String = redis::cmd("PING")
        .query_async(&mut services.redis.clone())
        .await
        .expect("PING");
    assert_eq!(pong, "PONG");
    let queue = queue_name(&prefix, "checkout");
    let mut pubsub = services
        .redis_client
        .get_async_pubsub()
        .await
        .expect("a subscription over TLS");
    pubsub
        .subscribe(pushed_channel(&queue))
        .await
        .expect("subscribe");
    let job_id = Uuid::now_v7();
    services
        .queue
        .push("checkout", JobTask::new(job_id), Duration::ZERO)
        .await
        .expect("push");
    let announced = tokio::time::timeout(Duration::from_secs(5), pubsub.on_message().next())
        .await
        .expect("the push is announced");
    assert!(announced.is_some());
    let config = redis_config(&prefix, "checkout", &services.settings.worker);
    let stored: Vec<String> = redis::cmd("HVALS")
        .arg(config.job_data_hash())
        .query_async(&mut services.redis.clone())
        .await
        .expect("HVALS");
    assert_eq!(stored.len(), 1, "{stored:?}");
    assert!(stored[0].contains(&job_id.to_string()), "{stored:?}");
}

#[tokio::test]
async fn postgres_refuses_plain_connections_and_unverified_certificates_fail() {
    let Some(servers) = servers() else { return };
    let ca = servers.ca.display().to_string();
    let other_ca = servers.other_ca.display().to_string();

    for params in [
        format!("sslmode=verify-ca&sslrootcert={ca}"),
        // Encrypted without verification, as `require` means in libpq.
        "sslmode=require".to_owned(),
    ] {
        let mut conn = PgConnection::connect(&servers.database_url(&params))
            .await
            .unwrap_or_else(|e| panic!("{params}: {e}"));
        assert!(is_tls(&mut conn).await, "{params}");
    }

    let plain = PgConnection::connect(&servers.database_url("sslmode=disable"))
        .await
        .expect_err("the server takes TLS only");
    // 28000: no pg_hba.conf line admits it (the `hostnossl … reject`).
    assert_eq!(
        plain.as_database_error().and_then(|e| e.code()).as_deref(),
        Some("28000"),
        "{plain}"
    );

    for params in [
        format!("sslmode=verify-full&sslrootcert={other_ca}"),
        // The webpki roots alone do not know the test CA.
        "sslmode=verify-full".to_owned(),
    ] {
        let refused = PgConnection::connect(&servers.database_url(&params))
            .await
            .expect_err("a certificate from an unknown CA");
        assert!(
            format!("{refused:?}").contains("UnknownIssuer"),
            "{params}: {refused:?}"
        );
    }
}

/// One connection of its own (no reconnecting manager, so a refusal is seen at once).
async fn ping(client: redis::Client) -> redis::RedisResult<String> {
    let connecting = client.get_multiplexed_async_connection();
    let mut conn = tokio::time::timeout(Duration::from_secs(10), connecting)
        .await
        .expect("the attempt ends")?;
    redis::cmd("PING").query_async(&mut conn).await
}

#[tokio::test]
async fn redis_checks_the_certificate_against_the_configured_ca() {
    let Some(servers) = servers() else { return };
    let url = servers.redis_url();

    let trusted = shared::kv::redis_client(&url, Some(&servers.ca)).expect("client");
    assert_eq!(ping(trusted).await.expect("PING with the CA"), "PONG");

    let wrong = shared::kv::redis_client(&url, Some(&servers.other_ca)).expect("client");
    let refused = ping(wrong)
        .await
        .expect_err("a certificate from another CA");
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");
    let roots_only = shared::kv::redis_client(&url, None).expect("client");
    let refused = ping(roots_only)
        .await
        .expect_err("the webpki roots do not know the test CA");
    assert!(refused.to_string().contains("UnknownIssuer"), "{refused}");

    // Verification cannot be switched off: redis-rs's `#insecure` is refused by this build.
    let insecure = shared::kv::redis_client(&format!("{url}/#insecure"), None).expect("client");
    let refused = ping(insecure).await.expect_err("an unverified connection");
    assert!(
        refused.to_string().contains("without tls-rustls-insecure"),
        "{refused}"
    );

    let missing = servers.dir.join("missing.pem");
    let unreadable = shared::kv::redis_client(&url, Some(&missing)).expect_err("no such file");
    assert!(
        unreadable.to_string().contains("REDIS_CA_CERT"),
        "{unreadable}"
    );
}
