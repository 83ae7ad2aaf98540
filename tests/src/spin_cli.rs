//! The real runtime in tests: `spin up` (Spin 4.1 or 3.6) and `redis-server`, started on free
//! loopback ports, stopped (with every process they started) when dropped.
//!
//! Binaries are found on `PATH`, then in `../shared/tools` beside the repository (the Spin
//! builds provided there). [`require`] decides what a missing one means: in CI (`CI` set) a
//! failure, elsewhere a skip that says so.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};

/// Where a binary is: `PATH` first, then `../shared/tools`.
pub fn find(name: &str) -> Option<PathBuf> {
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join(name))
            .find(|p| p.is_file())
    });
    on_path.or_else(|| {
        let tools = crate::repo_root().join("../shared/tools").join(name);
        tools.is_file().then_some(tools)
    })
}

/// The binary `name`, or why it cannot be had. In CI a missing binary fails the test (the
/// suite must never pass by skipping); elsewhere the caller skips, saying so.
pub fn require(name: &str) -> Result<Option<PathBuf>> {
    match find(name) {
        Some(path) => Ok(Some(path)),
        None if std::env::var_os("CI").is_some() => {
            bail!("{name} is not installed and CI is set: the real-runtime tests must run")
        }
        None => {
            eprintln!("SKIPPED: {name} not found on PATH or in ../shared/tools");
            Ok(None)
        }
    }
}

/// A free TCP port on 127.0.0.1.
pub fn free_port() -> Result<u16> {
    Ok(TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// A child process in its own process group, killed with its whole group when dropped
/// (`spin up` runs `spin trigger http` as a child of its own).
struct Group(Child);

impl Group {
    fn spawn(mut command: Command) -> Result<Self> {
        use std::os::unix::process::CommandExt;
        command.process_group(0);
        Ok(Group(command.spawn().context("starting a process")?))
    }

    fn exited(&mut self) -> bool {
        matches!(self.0.try_wait(), Ok(Some(_)))
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        let group = format!("-{}", self.0.id());
        let _ = Command::new("kill")
            .args(["-KILL", "--", &group])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A `redis-server` on a free port, without persistence.
pub struct RedisServer {
    process: Option<Group>,
    port: u16,
    binary: PathBuf,
}

impl RedisServer {
    /// Starts `redis-server` (the path from [`require`]) and waits until it answers.
    pub fn start(binary: &Path) -> Result<Self> {
        let port = free_port()?;
        let process = Self::spawn(binary, port)?;
        Ok(Self {
            process: Some(process),
            port,
            binary: binary.to_path_buf(),
        })
    }

    /// Stops the server (an outage: its data is gone, as without persistence).
    pub fn stop(&mut self) {
        self.process = None;
    }

    /// Starts it again on the same port.
    pub fn restart(&mut self) -> Result<()> {
        self.process = Some(Self::spawn(&self.binary, self.port)?);
        Ok(())
    }

    fn spawn(binary: &Path, port: u16) -> Result<Group> {
        let mut command = Command::new(binary);
        command
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let mut process = Group::spawn(command)?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if process.exited() || Instant::now() > deadline {
                bail!("redis-server did not start on port {port}");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(process)
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }
}

/// Which key-value store (and runtime config) a `spin up` gets.
pub enum Store {
    /// Spin's default: SQLite in the state directory, no runtime config.
    Sqlite,
    /// Redis at this URL (`redis://127.0.0.1:6379`).
    Redis(String),
    /// A runtime config file of the repository (`runtime-config/sqlite.toml`), as a user
    /// runs it, but with its SQLite file moved into the test's own directory.
    Config(PathBuf),
    /// A Redis runtime config file of the repository (`runtime-config/redis.toml`), as a user
    /// runs it, but with the test's Redis URL.
    RedisConfig(PathBuf, String),
}

/// A running `spin up` of an application.
pub struct SpinUp {
    process: Group,
    url: String,
    dir: tempfile::TempDir,
}

impl SpinUp {
    /// Runs `spin up` with `binary` for the manifest at `manifest`, on a free loopback port,
    /// with `store` as its default key-value store, the state directory (SQLite file, logs)
    /// in a temporary directory, and `env` in its environment (`SPIN_VARIABLE_*`). Returns
    /// once `ready_path` answers.
    pub fn start(
        binary: &Path,
        manifest: &Path,
        store: Store,
        env: &[(&str, &str)],
        ready_path: &str,
    ) -> Result<Self> {
        let dir = tempfile::tempdir()?;
        let port = free_port()?;
        let log = std::fs::File::create(dir.path().join("spin.log"))?;
        let mut command = Command::new(binary);
        command
            .arg("up")
            .arg("--from")
            .arg(manifest)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--state-dir")
            .arg(dir.path().join("state"))
            .envs(env.iter().copied())
            .stdout(log.try_clone()?)
            .stderr(log);
        let config = dir.path().join("runtime-config.toml");
        match store {
            Store::Sqlite => {}
            Store::Redis(url) => {
                std::fs::write(
                    &config,
                    format!("[key_value_store.default]\ntype = \"redis\"\nurl = \"{url}\"\n"),
                )?;
                command.arg("--runtime-config-file").arg(&config);
            }
            Store::Config(file) => {
                let db = dir.path().join("store.db");
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
                    .lines()
                    .map(|l| {
                        if l.trim_start().starts_with("path =") {
                            format!("path = {:?}", db.display().to_string())
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                std::fs::write(&config, text)?;
                command.arg("--runtime-config-file").arg(&config);
            }
            Store::RedisConfig(file, url) => {
                let text = std::fs::read_to_string(&file)
                    .with_context(|| format!("reading {}", file.display()))?
                    .lines()
                    .map(|l| {
                        if l.trim_start().starts_with("url =") {
                            format!("url = {url:?}")
                        } else {
                            l.to_string()
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("\n");
                std::fs::write(&config, text)?;
                command.arg("--runtime-config-file").arg(&config);
            }
        }
        let process = Group::spawn(command)?;
        let mut up = SpinUp {
            process,
            url: format!("http://127.0.0.1:{port}"),
            dir,
        };
        up.wait_ready(ready_path)?;
        Ok(up)
    }

    fn wait_ready(&mut self, path: &str) -> Result<()> {
        // The first start compiles every component; later ones hit Wasmtime's cache.
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            if self.process.exited() {
                bail!("spin up exited:\n{}", self.log_tail());
            }
            if let Ok(status) = http_status(&self.url, path)
                && status < 500
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!("spin up did not answer {path}:\n{}", self.log_tail());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `http://127.0.0.1:<port>`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Every line the components wrote to stderr so far (their JSON log), as Spin keeps them
    /// (`<state dir>/logs/<component>_stderr.txt`), component by component.
    pub fn component_logs(&self) -> Vec<String> {
        let dir = self.dir.path().join("state/logs");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        files.sort();
        files
            .iter()
            .filter(|p| p.to_string_lossy().ends_with("_stderr.txt"))
            .flat_map(|p| {
                std::fs::read_to_string(p)
                    .unwrap_or_default()
                    .lines()
                    .map(str::to_string)
                    .collect::<Vec<_>>()
            })
            .collect()
    }

    /// Kills the instance (and its trigger process) at once, as a crash or an evicted pod.
    pub fn kill(self) {
        drop(self);
    }

    /// The last lines Spin and the components printed.
    pub fn log_tail(&self) -> String {
        let text = std::fs::read(self.dir.path().join("spin.log")).unwrap_or_default();
        let text = String::from_utf8_lossy(&text);
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }
}

/// The status of a plain `GET` over a fresh connection (readiness probes; loopback only).
fn http_status(base: &str, path: &str) -> Result<u16> {
    use std::io::{Read, Write};
    let addr = base.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(addr)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head)?;
    let text = std::str::from_utf8(&head[9..12])?;
    Ok(text.parse()?)
}
