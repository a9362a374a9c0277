//! A throwaway `redis-server` on a port of its own, without persistence (as in docker-compose),
//! for tests that restart Redis: restarting the shared one would disturb every other test.

use std::{
    net::TcpListener,
    process::{Child, Command, Stdio},
    time::Duration,
};

/// A running private Redis; stopped when dropped.
pub struct PrivateRedis {
    child: Child,
}

impl PrivateRedis {
    /// Starts `redis-server` on `port` and waits until it listens.
    pub fn start(port: u16) -> Self {
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        crate::eventually_blocking(
            &format!("redis-server to listen on {port}"),
            Duration::from_secs(10),
            || std::net::TcpStream::connect(("127.0.0.1", port)),
        );
        Self { child }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A port nothing listens on right now.
pub fn free_port() -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").expect("a free port");
    listener.local_addr().expect("address").port()
}

/// Whether `redis-server` can be started here (installed with Redis; GitHub's runners only
/// have it once the workflow installs it, since Redis itself runs in a service container).
pub fn redis_server_installed() -> bool {
    Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}
