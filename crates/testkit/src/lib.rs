//! Private servers for tests that must kill or freeze a dependency.
//!
//! Each server runs as a child process on a free loopback port with its data
//! in a temporary directory, and is killed when dropped. [`Server::freeze`]
//! sends SIGSTOP to the server and every process it started (a frozen
//! PostgreSQL stops its backends too), [`Server::thaw`] sends SIGCONT,
//! [`Server::kill`] SIGKILL, and [`Server::restart`] starts it again on the
//! same port with the same data.
//!
//! Tests that only need *a* server, not one they can break, use the machine's
//! running services through [`shared`], each with its own namespace.
//!
//! The binaries are found on `PATH` (PostgreSQL's also under
//! `/usr/lib/postgresql/*/bin`). A missing binary is an error, never a skip:
//! the README's test command installs them.

#![warn(missing_docs)]

pub mod shared;
pub mod tls;

use std::fs;
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use nix::unistd::Pid;
use tempfile::TempDir;

/// Errors starting or controlling a test server.
pub type Error = String;

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("the OS hands out a free loopback port")
}

/// Finds an executable on `PATH` or in the extra directories.
pub(crate) fn find_binary(name: &str, extra: &[PathBuf]) -> Result<PathBuf, Error> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(extra.iter().cloned())
        .map(|dir| dir.join(name))
        .find(|p| p.is_file())
        .ok_or_else(|| format!("{name} not found on PATH; scripts/test installs it (apt-get install)"))
}

pub(crate) fn postgres_bin_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = fs::read_dir("/usr/lib/postgresql")
        .map(|entries| entries.flatten().map(|e| e.path().join("bin")).collect())
        .unwrap_or_default();
    dirs.sort();
    dirs.reverse(); // newest major version first
    dirs
}

/// Where `scripts/services` installs the tools that are not Debian
/// packages (the DynamoDB emulators).
pub fn tools_dir() -> PathBuf {
    std::env::var_os("PLAYMARK_TOOLS").map_or_else(|| PathBuf::from("/opt/playmark-tools"), PathBuf::from)
}

/// What kind of server, and how to start and probe it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Redis {
        cluster: bool,
    },
    Postgres,
    Nats,
    /// The dynalite DynamoDB emulator (npm), in memory.
    Dynalite,
    /// moto's DynamoDB in server mode (PyPI), in memory.
    Moto,
}

/// A private server process.
#[derive(Debug)]
pub struct Server {
    kind: Kind,
    port: u16,
    dir: TempDir,
    child: Option<Child>,
    /// Serves TLS only, with `tls.crt` and `tls.key` in its directory.
    tls: bool,
}

impl Server {
    /// A private redis-server (nothing persisted to disk).
    pub fn redis() -> Result<Self, Error> {
        Self::start(Kind::Redis { cluster: false })
    }

    /// A redis-server with cluster mode on, not yet joined to a cluster.
    pub fn redis_cluster_node() -> Result<Self, Error> {
        Self::start(Kind::Redis { cluster: true })
    }

    /// A private PostgreSQL cluster (fresh initdb, trust auth, fsync on).
    pub fn postgres() -> Result<Self, Error> {
        Self::start(Kind::Postgres)
    }

    /// A private nats-server with JetStream.
    pub fn nats() -> Result<Self, Error> {
        Self::start(Kind::Nats)
    }

    /// A private dynalite (a DynamoDB emulator on LevelDB, in memory).
    pub fn dynalite() -> Result<Self, Error> {
        Self::start(Kind::Dynalite)
    }

    /// A private moto server (the DynamoDB API among others, in memory).
    pub fn moto() -> Result<Self, Error> {
        Self::start(Kind::Moto)
    }

    /// A private PostgreSQL that requires TLS, with this certificate and
    /// key (PEM).
    pub fn postgres_tls(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        Self::start_tls(Kind::Postgres, cert_pem, key_pem)
    }

    /// A private redis-server that speaks only TLS (`rediss://`), with this
    /// certificate and key (PEM).
    pub fn redis_tls(cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        Self::start_tls(Kind::Redis { cluster: false }, cert_pem, key_pem)
    }

    fn start(kind: Kind) -> Result<Self, Error> {
        let mut server = Self::new(kind)?;
        server.spawn()?;
        Ok(server)
    }

    fn start_tls(kind: Kind, cert_pem: &str, key_pem: &str) -> Result<Self, Error> {
        let mut server = Self::new(kind)?;
        server.tls = true;
        let write = |name: &str, text: &str| {
            let path = server.dir.path().join(name);
            fs::write(&path, text).map_err(|e| format!("cannot write {name}: {e}"))?;
            // PostgreSQL refuses a key others can read.
            use std::os::unix::fs::PermissionsExt;
            fs::set_permissions(&path, fs::Permissions::from_mode(0o600))
                .map_err(|e| format!("chmod {name}: {e}"))
        };
        write("tls.crt", cert_pem)?;
        write("tls.key", key_pem)?;
        server.spawn()?;
        Ok(server)
    }

    fn new(kind: Kind) -> Result<Self, Error> {
        let dir = tempfile::Builder::new()
            .prefix("playmark-testkit-")
            .tempdir()
            .map_err(|e| format!("cannot create a temp dir: {e}"))?;
        let server = Server { kind, port: free_port(), dir, child: None, tls: false };
        if kind == Kind::Postgres {
            server.initdb()?;
        }
        Ok(server)
    }

    /// The loopback port it listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client URL: `redis://…` (`rediss://…` with TLS), `postgres://…` or
    /// `nats://…`.
    pub fn url(&self) -> String {
        match self.kind {
            Kind::Redis { .. } if self.tls => format!("rediss://127.0.0.1:{}", self.port),
            Kind::Redis { .. } => format!("redis://127.0.0.1:{}", self.port),
            Kind::Postgres => format!("postgres://postgres@127.0.0.1:{}/postgres", self.port),
            Kind::Nats => format!("nats://127.0.0.1:{}", self.port),
            Kind::Dynalite | Kind::Moto => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// Stops every process of the server (SIGSTOP): connections stay open,
    /// nothing answers. The harshest kind of slow.
    pub fn freeze(&self) -> Result<(), Error> {
        self.signal(Signal::SIGSTOP)
    }

    /// Resumes a frozen server (SIGCONT).
    pub fn thaw(&self) -> Result<(), Error> {
        self.signal(Signal::SIGCONT)
    }

    /// Kills the server outright (SIGKILL), as a crash would.
    pub fn kill(&mut self) -> Result<(), Error> {
        if let Some(mut child) = self.child.take() {
            let _ = signal_tree(child.id(), Signal::SIGKILL);
            // A stopped process dies only once resumed.
            let _ = signal_tree(child.id(), Signal::SIGCONT);
            child.wait().map_err(|e| format!("cannot reap the server: {e}"))?;
        }
        Ok(())
    }

    /// Kills the server if it runs, and starts it again on the same port
    /// with the same data.
    pub fn restart(&mut self) -> Result<(), Error> {
        self.kill()?;
        self.spawn()
    }

    fn signal(&self, signal: Signal) -> Result<(), Error> {
        let child = self.child.as_ref().ok_or("the server is not running")?;
        signal_tree(child.id(), signal)
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("server.log")
    }

    fn initdb(&self) -> Result<(), Error> {
        let data = self.dir.path().join("pgdata");
        let mut cmd = Command::new(find_binary("initdb", &postgres_bin_dirs())?);
        cmd.args(["-D"]).arg(&data).args(["-U", "postgres", "--auth=trust", "--no-sync", "-E", "UTF8"]);
        self.as_postgres_user(&mut cmd)?;
        let out = cmd.output().map_err(|e| format!("cannot run initdb: {e}"))?;
        if !out.status.success() {
            return Err(format!("initdb failed: {}", String::from_utf8_lossy(&out.stderr)));
        }
        Ok(())
    }

    /// PostgreSQL refuses to run as root; run it as the `postgres` user then,
    /// with the temp dir handed over to it.
    fn as_postgres_user(&self, cmd: &mut Command) -> Result<(), Error> {
        if !nix::unistd::Uid::effective().is_root() {
            return Ok(());
        }
        let user = nix::unistd::User::from_name("postgres")
            .map_err(|e| format!("cannot look up the postgres user: {e}"))?
            .ok_or("PostgreSQL cannot run as root and there is no postgres user")?;
        chown_tree(self.dir.path(), user.uid, user.gid)?;
        cmd.uid(user.uid.as_raw()).gid(user.gid.as_raw());
        Ok(())
    }

    fn spawn(&mut self) -> Result<(), Error> {
        let port = self.port.to_string();
        let dir = self.dir.path();
        let mut cmd = match self.kind {
            Kind::Redis { cluster } => {
                let mut cmd = Command::new(find_binary("redis-server", &[])?);
                cmd.args(["--port", &port, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
                    .arg("--dir")
                    .arg(dir);
                if cluster {
                    cmd.args(["--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf"]);
                }
                if self.tls {
                    cmd.args(["--port", "0", "--tls-port", &port, "--tls-auth-clients", "no"])
                        .arg("--tls-cert-file")
                        .arg(dir.join("tls.crt"))
                        .arg("--tls-key-file")
                        .arg(dir.join("tls.key"));
                }
                cmd
            }
            Kind::Postgres => {
                let mut cmd = Command::new(find_binary("postgres", &postgres_bin_dirs())?);
                cmd.arg("-D").arg(dir.join("pgdata")).args([
                    "-p",
                    &port,
                    "-c",
                    "listen_addresses=127.0.0.1",
                    "-c",
                    "max_connections=200",
                    "-c",
                    "fsync=on",
                ]);
                cmd.arg("-k").arg(dir);
                if self.tls {
                    cmd.args(["-c", "ssl=on"])
                        .arg("-c")
                        .arg(format!("ssl_cert_file={}", dir.join("tls.crt").display()))
                        .arg("-c")
                        .arg(format!("ssl_key_file={}", dir.join("tls.key").display()));
                }
                self.as_postgres_user(&mut cmd)?;
                cmd
            }
            Kind::Nats => {
                let mut cmd = Command::new(find_binary("nats-server", &[])?);
                cmd.args(["-a", "127.0.0.1", "-p", &port, "-js", "-sd"]).arg(dir.join("jetstream"));
                cmd
            }
            Kind::Dynalite => {
                let mut cmd =
                    Command::new(find_binary("dynalite", &[tools_dir().join("dynalite/node_modules/.bin")])?);
                cmd.args(["--host", "127.0.0.1", "--port", &port]).args([
                    "--createTableMs",
                    "0",
                    "--deleteTableMs",
                    "0",
                    "--updateTableMs",
                    "0",
                ]);
                cmd
            }
            Kind::Moto => {
                let mut cmd = Command::new(find_binary("moto_server", &[tools_dir().join("moto/bin")])?);
                cmd.args(["-H", "127.0.0.1", "-p", &port]);
                cmd
            }
        };
        let log = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())
            .map_err(|e| format!("cannot open the server log: {e}"))?;
        let log2 = log.try_clone().map_err(|e| format!("cannot open the server log: {e}"))?;
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(log2)
            .process_group(0)
            .spawn()
            .map_err(|e| format!("cannot start {:?}: {e}", self.kind))?;
        self.child = Some(child);
        self.wait_ready()
    }

    fn wait_ready(&mut self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.probe() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                return Err(format!(
                    "{:?} exited ({status}) before it was ready:\n{}",
                    self.kind,
                    self.log_tail()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!("{:?} not ready within 30 s:\n{}", self.kind, self.log_tail()));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// One readiness probe over the wire.
    fn probe(&self) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", self.port)) else { return false };
        let _ = conn.set_read_timeout(Some(Duration::from_secs(1)));
        match self.kind {
            Kind::Redis { .. } if self.tls => find_binary("redis-cli", &[]).is_ok_and(|cli| {
                Command::new(cli)
                    .args(["--tls", "--insecure", "-p", &self.port.to_string(), "ping"])
                    .output()
                    .is_ok_and(|o| o.stdout.starts_with(b"PONG"))
            }),
            Kind::Redis { .. } => {
                let mut buf = [0u8; 7];
                conn.write_all(b"PING\r\n").is_ok()
                    && conn.read_exact(&mut buf).is_ok()
                    && &buf == b"+PONG\r\n"
            }
            Kind::Nats => {
                let mut buf = [0u8; 4];
                conn.read_exact(&mut buf).is_ok() && &buf == b"INFO"
            }
            Kind::Dynalite | Kind::Moto => {
                // Any HTTP answer: both answer a bare GET (with an error).
                let request =
                    format!("GET / HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n", self.port);
                let mut buf = [0u8; 5];
                conn.write_all(request.as_bytes()).is_ok()
                    && conn.read_exact(&mut buf).is_ok()
                    && &buf == b"HTTP/"
            }
            Kind::Postgres => {
                // The port accepts before the database does; ask pg_isready.
                find_binary("pg_isready", &postgres_bin_dirs()).is_ok_and(|bin| {
                    Command::new(bin)
                        .args(["-h", "127.0.0.1", "-p", &self.port.to_string(), "-U", "postgres", "-q"])
                        .status()
                        .is_ok_and(|s| s.success())
                })
            }
        }
    }

    fn log_tail(&self) -> String {
        let log = fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.kill();
    }
}

/// Sends `signal` to `root` and every process descended from it. A process
/// group is not enough: PostgreSQL puts each backend in a session of its own.
fn signal_tree(root: u32, signal: Signal) -> Result<(), Error> {
    // The root first: a stopped (or killed) parent cannot fork new children
    // while the tree is walked.
    send(root, signal)?;
    let mut pids = children_of(root);
    let mut i = 0;
    while i < pids.len() {
        send(pids[i], signal)?;
        pids.extend(children_of(pids[i]));
        i += 1;
    }
    Ok(())
}

fn send(pid: u32, signal: Signal) -> Result<(), Error> {
    let raw = i32::try_from(pid).map_err(|_| format!("pid {pid} out of range"))?;
    // A process may exit between listing and signalling; that is fine.
    match nix::sys::signal::kill(Pid::from_raw(raw), signal) {
        Ok(()) | Err(nix::errno::Errno::ESRCH) => Ok(()),
        Err(e) => Err(format!("cannot send {signal} to {pid}: {e}")),
    }
}

/// The direct children of `parent`, from `/proc/*/stat`.
fn children_of(parent: u32) -> Vec<u32> {
    let Ok(entries) = fs::read_dir("/proc") else { return Vec::new() };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str().and_then(|n| n.parse::<u32>().ok()))
        .filter(|pid| {
            fs::read_to_string(format!("/proc/{pid}/stat")).ok().is_some_and(|stat| {
                // Fields after the command (which may hold spaces) in parentheses:
                // state, ppid, ...
                stat.rsplit_once(')')
                    .and_then(|(_, rest)| rest.split_whitespace().nth(1))
                    .and_then(|ppid| ppid.parse::<u32>().ok())
                    == Some(parent)
            })
        })
        .collect()
}

fn chown_tree(path: &Path, uid: nix::unistd::Uid, gid: nix::unistd::Gid) -> Result<(), Error> {
    nix::unistd::chown(path, Some(uid), Some(gid))
        .map_err(|e| format!("cannot chown {}: {e}", path.display()))?;
    if path.is_dir() {
        for entry in fs::read_dir(path).map_err(|e| format!("cannot list {}: {e}", path.display()))? {
            let entry = entry.map_err(|e| format!("cannot list {}: {e}", path.display()))?;
            chown_tree(&entry.path(), uid, gid)?;
        }
    }
    Ok(())
}

/// A Redis Cluster of private nodes, all masters, slots spread evenly.
#[derive(Debug)]
pub struct RedisCluster {
    /// The nodes, in the order they were created.
    pub nodes: Vec<Server>,
}

impl RedisCluster {
    /// Starts `n` (at least 3) cluster-mode redis-servers and joins them
    /// with `redis-cli --cluster create`.
    pub fn start(n: usize) -> Result<Self, Error> {
        let nodes = (0..n).map(|_| Server::redis_cluster_node()).collect::<Result<Vec<_>, _>>()?;
        let addrs: Vec<String> = nodes.iter().map(|s| format!("127.0.0.1:{}", s.port())).collect();
        let out = Command::new(find_binary("redis-cli", &[])?)
            .args(["--cluster", "create"])
            .args(&addrs)
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .map_err(|e| format!("cannot run redis-cli: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "redis-cli --cluster create failed: {}",
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        let cluster = RedisCluster { nodes };
        cluster.wait_ok()?;
        Ok(cluster)
    }

    /// Seed URLs of every node, comma-separated, as `--redis-url` takes them.
    pub fn urls(&self) -> String {
        self.nodes.iter().map(Server::url).collect::<Vec<_>>().join(",")
    }

    fn wait_ok(&self) -> Result<(), Error> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let cli = find_binary("redis-cli", &[])?;
        loop {
            let all_ok = self.nodes.iter().all(|node| {
                Command::new(&cli)
                    .args(["-p", &node.port().to_string(), "cluster", "info"])
                    .output()
                    .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).contains("cluster_state:ok"))
            });
            if all_ok {
                return Ok(());
            }
            if Instant::now() > deadline {
                return Err("the cluster did not reach cluster_state:ok within 30 s".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn redis_answers(port: u16) -> bool {
        let Ok(mut conn) = TcpStream::connect(("127.0.0.1", port)) else { return false };
        let _ = conn.set_read_timeout(Some(Duration::from_millis(300)));
        let mut buf = [0u8; 7];
        conn.write_all(b"PING\r\n").is_ok() && conn.read_exact(&mut buf).is_ok()
    }

    #[test]
    fn redis_can_be_frozen_thawed_killed_and_restarted() {
        let mut redis = Server::redis().expect("redis starts");
        assert!(redis_answers(redis.port()));
        redis.freeze().expect("freezes");
        assert!(!redis_answers(redis.port()), "a frozen redis answered");
        redis.thaw().expect("thaws");
        assert!(redis_answers(redis.port()));
        redis.kill().expect("killed");
        assert!(!redis_answers(redis.port()));
        redis.restart().expect("restarts");
        assert!(redis_answers(redis.port()));
    }

    #[test]
    fn a_frozen_postgres_freezes_its_backends_too() {
        let pg = Server::postgres().expect("postgres starts");
        let root = pg.child.as_ref().expect("running").id();
        pg.freeze().expect("freezes");
        let stopped = |pid: u32| {
            fs::read_to_string(format!("/proc/{pid}/stat"))
                .ok()
                // Stopped, or already dead (a zombie its stopped parent has not reaped).
                .and_then(|s| {
                    s.rsplit_once(')').map(|(_, rest)| rest.trim_start().starts_with(['T', 't', 'Z', 'X']))
                })
                .unwrap_or(true)
        };
        let children = children_of(root);
        assert!(!children.is_empty(), "postgres has background processes");
        // Signals are delivered asynchronously: allow a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        while !(stopped(root) && children.iter().all(|c| stopped(*c))) {
            assert!(Instant::now() < deadline, "some postgres process still runs");
            std::thread::sleep(Duration::from_millis(10));
        }
        pg.thaw().expect("thaws");
        assert!(pg.probe());
    }

    #[test]
    fn postgres_starts_and_restarts_on_the_same_port() {
        let mut pg = Server::postgres().expect("postgres starts");
        let port = pg.port();
        assert!(pg.probe());
        pg.restart().expect("restarts");
        assert_eq!(pg.port(), port);
        assert!(pg.probe());
    }

    #[test]
    fn nats_starts_with_jetstream() {
        let nats = Server::nats().expect("nats starts");
        assert!(nats.probe());
        assert!(nats.url().starts_with("nats://127.0.0.1:"));
    }

    #[test]
    fn a_redis_cluster_of_three_reaches_ok() {
        let cluster = RedisCluster::start(3).expect("cluster forms");
        assert_eq!(cluster.urls().split(',').count(), 3);
    }
}
