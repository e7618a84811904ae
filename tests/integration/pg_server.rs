//! A PostgreSQL server of the test's own (`initdb` + `pg_ctl` in a temp dir, on a free port), so a
//! test can stop and start the database under a running keypool. Needs the PostgreSQL server binaries
//! (`/usr/lib/postgresql/*/bin`); as root the cluster runs as the `postgres` user.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A private PostgreSQL cluster; dropping it stops the server (immediate mode) and removes its files.
pub struct PgServer {
    bin: PathBuf,
    dir: tempfile::TempDir,
    port: u16,
    as_postgres: bool,
    running: bool,
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb` and `pg_ctl`.
fn server_bin() -> Option<PathBuf> {
    let mut found: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version: u32 = entry.file_name().to_str()?.split('.').next()?.parse().ok()?;
            let bin = entry.path().join("bin");
            (bin.join("initdb").is_file() && bin.join("pg_ctl").is_file()).then_some((version, bin))
        })
        .collect();
    found.sort();
    found.pop().map(|(_, bin)| bin)
}

fn is_root() -> bool {
    Command::new("id").arg("-u").output().is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn chown_to_postgres(path: &Path) {
    let status = Command::new("chown").arg("postgres:postgres").arg(path).status().unwrap();
    assert!(status.success(), "chown postgres {}", path.display());
}

impl PgServer {
    /// Creates and starts a cluster. Tests that use it are ignored where the server binaries are
    /// missing (`keypool_pg_server`, from build.rs), so here they must be present.
    pub fn start() -> Option<Self> {
        let bin = server_bin().expect("no initdb under /usr/lib/postgresql/*/bin: apt-get install postgresql");
        let dir = tempfile::tempdir().unwrap();
        let as_postgres = is_root();
        let data = dir.path().join("data");
        let sock = dir.path().join("sock");
        std::fs::create_dir(&data).unwrap();
        std::fs::create_dir(&sock).unwrap();
        if as_postgres {
            // initdb refuses to run as root: the cluster belongs to `postgres`, who must reach it.
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
            chown_to_postgres(&data);
            chown_to_postgres(&sock);
        }
        let mut server = Self { bin, dir, port: 0, as_postgres, running: false };
        let out = server.pg("initdb", &["-D", &server.data(), "-A", "trust", "-U", "postgres", "-N"]);
        assert!(out.status.success(), "initdb failed: {}", text(&out));
        // A port that was free a moment ago may be taken by the time the server binds: try a few.
        for _ in 0..5 {
            server.port = free_port();
            if server.try_start() {
                return Some(server);
            }
        }
        panic!("PostgreSQL did not start: {}", server.log());
    }

    fn data(&self) -> String {
        self.dir.path().join("data").to_string_lossy().into_owned()
    }

    /// Runs a server binary (as `postgres` when the test runs as root).
    fn pg(&self, program: &str, args: &[&str]) -> Output {
        let exe = self.bin.join(program);
        let mut cmd = if self.as_postgres {
            let mut c = Command::new("runuser");
            c.args(["-u", "postgres", "--"]).arg(&exe);
            c
        } else {
            Command::new(&exe)
        };
        cmd.args(args).current_dir(self.dir.path()).output().unwrap()
    }

    fn try_start(&mut self) -> bool {
        let options = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1",
            self.port,
            self.dir.path().join("sock").to_string_lossy()
        );
        let log = self.dir.path().join("sock").join("server.log").to_string_lossy().into_owned();
        let out = self.pg("pg_ctl", &["-D", &self.data(), "-l", &log, "-o", &options, "-w", "-t", "60", "start"]);
        self.running = out.status.success();
        self.running
    }

    /// The server's log so far (for failure messages).
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("sock").join("server.log")).unwrap_or_default()
    }

    /// The URL of the `postgres` database, as an app's `DATABASE_URL`.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server (fast mode: clients are disconnected, everything committed is kept).
    pub fn stop(&mut self) {
        let out = self.pg("pg_ctl", &["-D", &self.data(), "-m", "fast", "-w", "-t", "60", "stop"]);
        assert!(out.status.success(), "pg_ctl stop: {}", text(&out));
        self.running = false;
    }

    /// Starts the stopped server again on the same port.
    pub fn restart(&mut self) {
        assert!(self.try_start(), "PostgreSQL did not start again: {}", self.log());
    }
}

impl Drop for PgServer {
    fn drop(&mut self) {
        if self.running {
            let _ = self.pg("pg_ctl", &["-D", &self.data(), "-m", "immediate", "-w", "stop"]);
        }
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}
