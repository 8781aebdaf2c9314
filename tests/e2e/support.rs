//! Helpers for end-to-end tests: a scratch directory with a data dir, the real `weft`
//! binary run in it, and readers for what it leaves behind.

use serde_json::Value;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const WEFT: &str = env!("CARGO_BIN_EXE_weft");
/// How long any awaited state may take before a test gives up: a safety net for a slow,
/// loaded machine, not a timing assertion.
pub const PATIENCE: Duration = Duration::from_secs(300);
pub const TESTING_ORCHESTRATOR: &str = env!("WEFT_GUEST_TESTING_ORCHESTRATOR");
pub const TESTING_ACTIVITIES: &str = env!("WEFT_GUEST_TESTING_ACTIVITIES");
pub const BACKUP_ACTIVITIES: &str = env!("WEFT_GUEST_BACKUP_ACTIVITIES");
/// A plain `wasi:cli/command` component: the wrong world for Weft.
pub const WRONG_WORLD: &str = env!("WEFT_GUEST_TESTING_COMMAND");

/// A scratch directory (the binary's working directory, so the allowed root) holding the
/// data dir `.weft`.
pub struct Scratch {
    pub dir: tempfile::TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().expect("create a scratch directory"),
        }
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn data_dir(&self) -> PathBuf {
        self.path().join(".weft")
    }

    /// `weft ARGS` in the scratch directory, sharing one compiled-component cache across
    /// tests so that each debug-build run does not compile the guests again.
    pub fn weft(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(WEFT);
        cmd.current_dir(self.path())
            .args(args)
            .env("WEFT_DATA_DIR", self.data_dir())
            .env(
                "WEFT_CACHE_DIR",
                Path::new(env!("CARGO_TARGET_TMPDIR")).join("weft-cache"),
            )
            .env("WEFT_LOG", "weft=info")
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `weft ARGS` to the end; a safety net kills it after 10 minutes.
    pub fn run(&self, args: &[&str]) -> Output {
        let child = self
            .weft(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn weft");
        wait_output(child, Duration::from_secs(600))
    }

    /// Runs `weft ARGS` and expects success; returns stdout's last line.
    pub fn run_ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        assert!(
            output.status.success(),
            "weft {args:?} failed:\n{}",
            describe(&output)
        );
        last_line(&output)
    }

    pub fn status(&self, id: &str) -> Value {
        let output = self.run(&["status", id]);
        assert!(
            output.status.success(),
            "weft status failed:\n{}",
            describe(&output)
        );
        serde_json::from_slice(&output.stdout).expect("status is JSON")
    }

    pub fn history(&self, id: &str) -> Vec<Value> {
        let output = self.run(&["history", id]);
        assert!(
            output.status.success(),
            "weft history failed:\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| serde_json::from_str(line).expect("history lines are JSON"))
            .collect()
    }

    /// The instance ids in the data dir, newest first.
    pub fn instance_ids(&self) -> Vec<String> {
        let output = self.run(&["list", "--json"]);
        assert!(
            output.status.success(),
            "weft list failed:\n{}",
            describe(&output)
        );
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .map(|line| {
                serde_json::from_str::<Value>(line).expect("list lines are JSON")["instanceId"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string()
            })
            .collect()
    }

    /// Reads the database directly and read-only, as a second process would.
    pub fn db(&self) -> rusqlite::Connection {
        rusqlite::Connection::open_with_flags(
            self.data_dir().join("weft.db"),
            rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY,
        )
        .expect("open weft.db read-only")
    }

    /// What `sql` (a `SELECT COUNT(*)`) counts in the database, read directly; 0 while
    /// there is no database yet.
    pub fn count(&self, sql: &str, params: impl rusqlite::Params) -> i64 {
        if !self.data_dir().join("weft.db").exists() {
            return 0;
        }
        self.db()
            .query_row(sql, params, |row| row.get(0))
            .expect("count rows")
    }

    /// The rows of instance `id`'s history in the database.
    pub fn history_rows(&self, id: &str) -> i64 {
        self.count("SELECT COUNT(*) FROM history WHERE instance_id = ?1", [id])
    }

    /// The instances in the database.
    pub fn instance_count(&self) -> i64 {
        self.count("SELECT COUNT(*) FROM instances", [])
    }
}

/// Waits for a child with a safety deadline, collecting its output.
pub fn wait_output(child: Child, limit: Duration) -> Output {
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(limit) {
        Ok(output) => output.expect("wait for weft"),
        Err(_) => {
            kill(pid);
            panic!("weft (pid {pid}) did not finish within {limit:?}");
        }
    }
}

pub fn kill(pid: u32) {
    let _ = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status();
}

pub fn last_line(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string()
}

pub fn describe(output: &Output) -> String {
    format!(
        "status: {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Polls `check` until it returns `Some`, failing after `limit` (a safety net, not a
/// timing assertion).
pub fn poll<T>(limit: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let start = Instant::now();
    loop {
        if let Some(found) = check() {
            return found;
        }
        assert!(
            start.elapsed() < limit,
            "condition not reached within {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Counts history events of `kind`, straight from the database; 0 while there is none.
pub fn count_events(scratch: &Scratch, kind: &str) -> i64 {
    let path = scratch.data_dir().join("weft.db");
    let Ok(db) =
        rusqlite::Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    db.query_row(
        "SELECT COUNT(*) FROM history WHERE event_type = ?1",
        [kind],
        |row| row.get(0),
    )
    .unwrap_or(0)
}

/// Deterministic pseudo-random bytes, so that content mix-ups show.
pub fn bytes(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

/// Writes `content` at `root/relative`, creating directories.
pub fn write(root: &Path, relative: &str, content: &[u8]) -> PathBuf {
    let path = root.join(relative);
    std::fs::create_dir_all(path.parent().expect("a file has a parent"))
        .expect("create directories");
    std::fs::write(&path, content).expect("write a file");
    path
}

/// Every regular file under `root` with its size.
pub fn files_under(root: &Path) -> Vec<(PathBuf, u64)> {
    let mut files: Vec<_> = walkdir::WalkDir::new(root)
        .into_iter()
        .filter_map(Result::ok)
        .filter(|entry| entry.file_type().is_file())
        .map(|entry| {
            (
                entry.path().to_path_buf(),
                entry.metadata().map(|m| m.len()).unwrap_or(0),
            )
        })
        .collect();
    files.sort();
    files
}

/// Where the backup sample puts the blob of `file`.
pub fn blob_of(data_dir: &Path, file: &Path) -> PathBuf {
    data_dir
        .join("blobs/backups")
        .join(file.strip_prefix("/").expect("absolute path"))
}

/// An HTTP client for the tests, with a safety deadline per request.
pub fn http_client() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .expect("HTTP client")
}

/// A running `weft serve` on a free loopback port, killed when dropped.
pub struct Server {
    child: Child,
    pub base: String,
    pub key: String,
    pub addr: String,
    /// The rpc listener's base URL (`http://127.0.0.1:PORT/durabletask/`), with `--rpc-addr`.
    pub rpc: Option<String>,
}

impl Server {
    /// Starts `weft serve --addr ADDR EXTRA...` and waits for its ready lines.
    pub fn start(scratch: &Scratch, addr: &str, extra: &[&str]) -> Self {
        Self::start_with(scratch, addr, extra, |_| {})
    }

    /// `weft serve` on loopback with the testing guests' components.
    pub fn testing(scratch: &Scratch) -> Self {
        let args = ["--components", TESTING_ORCHESTRATOR, TESTING_ACTIVITIES];
        Self::start(scratch, "127.0.0.1:0", &args)
    }

    /// [`Server::start`], with a last word on the command (its user, its environment).
    pub fn start_with(
        scratch: &Scratch,
        addr: &str,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Self {
        use std::io::BufRead;
        let mut args = vec!["serve", "--addr", addr];
        args.extend(extra);
        let mut command = scratch.weft(&args);
        adjust(&mut command);
        let mut child = command
            .stdout(Stdio::piped())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(scratch.path().join("serve.log"))
                    .expect("server log file"),
            )
            .spawn()
            .expect("spawn weft serve");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = std::io::BufReader::new(stdout).lines();
        let mut next = || lines.next().and_then(Result::ok).unwrap_or_default();
        let listening = next();
        let base = listening
            .strip_prefix("weft listening on ")
            .unwrap_or_else(|| panic!("ready line: {listening:?}"))
            .to_string();
        let key_line = next();
        let key = key_line
            .strip_prefix("key: ")
            .unwrap_or_else(|| panic!("key line: {key_line:?}"))
            .to_string();
        let rpc = extra.contains(&"--rpc-addr").then(|| {
            let rpc_line = next();
            rpc_line
                .strip_prefix("rpc listening on ")
                .unwrap_or_else(|| panic!("rpc line: {rpc_line:?}"))
                .to_string()
        });
        let addr = base.trim_start_matches("http://").to_string();
        Self {
            child,
            base,
            key,
            addr,
            rpc,
        }
    }

    /// `PATH` on this server, with the key.
    pub fn url(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!("{}/{path}{separator}code={}", self.base, self.key)
    }

    /// POSTs a JSON body to `PATH` (a start route).
    pub fn start_json(
        &self,
        client: &reqwest::blocking::Client,
        path: &str,
        body: &str,
    ) -> reqwest::blocking::Response {
        client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("POST")
    }

    /// An instance's check-status body.
    pub fn instance(&self, client: &reqwest::blocking::Client, id: &str) -> serde_json::Value {
        client
            .get(self.url(&format!("runtime/webhooks/durabletask/instances/{id}")))
            .send()
            .expect("GET status")
            .json()
            .expect("a JSON status")
    }

    /// Polls an instance until it has ended (neither Pending, Running nor Suspended);
    /// returns its status.
    pub fn wait_ended(&self, client: &reqwest::blocking::Client, id: &str) -> serde_json::Value {
        poll(Duration::from_secs(120), || {
            let body = self.instance(client, id);
            // A suspended instance has not ended: one just resumed may still say so.
            let status = &body["runtimeStatus"];
            (status != "Running" && status != "Pending" && status != "Suspended").then_some(body)
        })
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// SIGKILLs the server and waits for it to be gone.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
