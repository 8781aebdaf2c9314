//! Real blob servers for the cloud tests: Azurite (npm), moto's S3 server (PyPI) and
//! s3s-fs (crates.io, the S3 server that checks every request's signature), each started
//! on a free loopback port and killed when dropped; the vendor SDKs check what Weft wrote
//! (`tests/blobcheck.py`); and a way to run `weft` and learn its peak memory.

use serde_json::Value;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How to install what the cloud tests need; `.ci/run` does all of it.
const INSTALL: &str = "install the test blob servers and SDKs with .ci/run, or by hand:\n  \
     npm install --prefix ~/.cache/weft/npm azurite@3.35.0\n  \
     python3 -m pip install --user 'moto[server]>=5,<6' boto3 azure-storage-blob\n  \
     cargo install s3s-fs --version 0.14.1 --locked --features binary --root ~/.cache/weft/s3s";

/// Which server.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Azurite,
    /// moto: the S3 API in full (multipart uploads listed), but any signature passes.
    S3,
    /// s3s-fs: refuses a request whose signature does not match its secret key.
    SignedS3,
}

/// A blob server on 127.0.0.1, killed when dropped.
pub struct BlobServer {
    child: Child,
    pub kind: Kind,
    pub port: u16,
    _dir: tempfile::TempDir,
}

/// The Python the SDK checks and moto run with: `WEFT_TEST_PYTHON`, or `python3`.
fn python() -> String {
    std::env::var("WEFT_TEST_PYTHON").unwrap_or_else(|_| "python3".to_string())
}

/// The server program `name`: the path in the environment variable `variable`, the copy
/// `.ci/run` installs at `cached` (under `~/.cache/weft`), or the one on the PATH.
fn server_binary(variable: &str, cached: &str, name: &str) -> PathBuf {
    if let Ok(path) = std::env::var(variable) {
        return PathBuf::from(path);
    }
    let cached = PathBuf::from(std::env::var("HOME").unwrap_or_default())
        .join(".cache/weft")
        .join(cached);
    if cached.exists() {
        return cached;
    }
    PathBuf::from(name)
}

/// `tests/blobcheck.py`, the vendor SDKs' view of a server.
fn blobcheck() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/blobcheck.py")
}

/// The S3 servers' key pair.
const S3_KEY_ID: &str = "weft-test";
pub const S3_SECRET: &str = "weft-test-secret";

/// Fails the test, saying how to install what is missing, unless the SDKs import.
fn require_python_sdks() {
    let checked = Command::new(python())
        .args(["-c", "import moto.server, boto3, azure.storage.blob"])
        .output();
    match checked {
        Ok(output) if output.status.success() => {}
        Ok(output) => panic!(
            "the Python blob SDKs or moto are missing ({}); {INSTALL}",
            String::from_utf8_lossy(&output.stderr).trim()
        ),
        Err(e) => panic!("cannot run {}: {e}; {INSTALL}", python()),
    }
}

impl BlobServer {
    /// Azurite's blob service, in memory.
    pub fn azurite() -> Self {
        require_python_sdks();
        let binary = server_binary(
            "WEFT_AZURITE",
            "npm/node_modules/.bin/azurite-blob",
            "azurite-blob",
        );
        Self::start(Kind::Azurite, |dir| {
            let mut cmd = Command::new(&binary);
            cmd.current_dir(dir).args([
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--disableTelemetry",
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                "0",
            ]);
            cmd
        })
    }

    /// moto's S3-compatible server.
    pub fn s3() -> Self {
        require_python_sdks();
        Self::start(Kind::S3, |dir| {
            let mut cmd = Command::new(python());
            cmd.current_dir(dir)
                .args(["-m", "moto.server", "-H", "127.0.0.1", "-p", "0"]);
            cmd
        })
    }

    /// s3s-fs, storing in a directory of its own, with the test key pair: every request
    /// must be signed with [`S3_SECRET`].
    pub fn signed_s3() -> Self {
        require_python_sdks();
        let binary = server_binary("WEFT_S3S_FS", "s3s/bin/s3s-fs", "s3s-fs");
        Self::start(Kind::SignedS3, |dir| {
            let root = dir.join("data");
            std::fs::create_dir(&root).expect("the s3s-fs data directory");
            let mut cmd = Command::new(&binary);
            // Its address is logged at the info level only.
            cmd.current_dir(dir).env("RUST_LOG", "info").args([
                "--host",
                "127.0.0.1",
                "--port",
                "0",
                "--access-key",
                S3_KEY_ID,
                "--secret-key",
                S3_SECRET,
            ]);
            cmd.arg(root);
            cmd
        })
    }

    fn start(kind: Kind, command: impl FnOnce(&Path) -> Command) -> Self {
        let dir = tempfile::tempdir().expect("a directory for the server");
        let log = dir.path().join("server.log");
        let file = std::fs::File::create(&log).expect("server log");
        let child = command(dir.path())
            .stdin(Stdio::null())
            .stdout(file.try_clone().expect("log file"))
            .stderr(file)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start the {kind:?} server: {e}; {INSTALL}"));
        let mut server = Self {
            child,
            kind,
            port: 0,
            _dir: dir,
        };
        // The server prints the port it bound: Azurite "listens on http://127.0.0.1:N",
        // moto "Running on http://127.0.0.1:N", s3s-fs "server is running at
        // http://127.0.0.1:N".
        let start = Instant::now();
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            let port = text
                .lines()
                .filter(|line| {
                    ["listens on", "Running on", "running at"]
                        .iter()
                        .any(|said| line.contains(said))
                })
                .filter_map(|line| line.rsplit(':').next())
                .find_map(|port| port.trim().parse::<u16>().ok());
            if let Some(port) = port {
                server.port = port;
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!("the {kind:?} server exited ({status}):\n{text}\n{INSTALL}");
            }
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "the {kind:?} server did not start within 60 s:\n{text}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The environment Weft and the checker use to reach this server.
    pub fn env(&self) -> Vec<(String, String)> {
        let endpoint = format!("http://127.0.0.1:{}", self.port);
        let pairs: Vec<(&str, String)> = match self.kind {
            Kind::Azurite => vec![
                ("AZURE_STORAGE_USE_EMULATOR", "true".into()),
                ("AZURITE_BLOB_STORAGE_URL", endpoint),
            ],
            Kind::S3 | Kind::SignedS3 => vec![
                ("AWS_ENDPOINT_URL", endpoint),
                ("AWS_REGION", "us-east-1".into()),
                ("AWS_ACCESS_KEY_ID", S3_KEY_ID.into()),
                ("AWS_SECRET_ACCESS_KEY", S3_SECRET.into()),
                ("AWS_ALLOW_HTTP", "true".into()),
            ],
        };
        pairs.into_iter().map(|(k, v)| (k.to_string(), v)).collect()
    }

    /// The `--blobs` URL of `container`.
    pub fn url(&self, container: &str) -> String {
        match self.kind {
            Kind::Azurite => format!("az://{container}"),
            Kind::S3 | Kind::SignedS3 => format!("s3://{container}"),
        }
    }

    /// `blobcheck.py`'s name for the server's API.
    fn backend(&self) -> &'static str {
        match self.kind {
            Kind::Azurite => "azure",
            Kind::S3 | Kind::SignedS3 => "s3",
        }
    }

    fn check(&self, args: &[&str]) -> Value {
        let backend = self.backend();
        let output = Command::new(python())
            .arg(blobcheck())
            .arg(backend)
            .args(args)
            .envs(self.env())
            .output()
            .expect("run blobcheck.py");
        assert!(
            output.status.success(),
            "blobcheck.py {args:?} failed:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        serde_json::from_slice(&output.stdout).expect("blobcheck prints JSON")
    }

    /// Every blob under `prefix`, as the vendor SDK sees it: name, size, `sha256`
    /// metadata, `content_sha256` (of the downloaded bytes), etag, last_modified, parts.
    pub fn list(&self, container: &str, prefix: &str) -> Vec<Value> {
        match self.check(&["list", container, prefix]) {
            Value::Array(blobs) => blobs,
            other => panic!("unexpected listing {other}"),
        }
    }

    /// The names of the blobs in `container` whose uploads were left unfinished
    /// (uncommitted blocks, or open multipart uploads), as the vendor SDK sees them.
    pub fn incomplete(&self, container: &str) -> Vec<String> {
        match self.check(&["incomplete", container]) {
            Value::Array(found) => found
                .iter()
                .map(|upload| upload["name"].as_str().unwrap_or_default().to_string())
                .collect(),
            other => panic!("unexpected list of unfinished uploads {other}"),
        }
    }

    /// Starts watching `container` for an upload in progress (uncommitted blocks, or a
    /// started multipart upload); returns once the watcher is polling.
    pub fn watch_upload(&self, container: &str) -> UploadWatch {
        use std::io::BufRead;
        let backend = self.backend();
        let mut child = Command::new(python())
            .arg(blobcheck())
            .args([backend, "wait-upload", container])
            .envs(self.env())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("run blobcheck.py wait-upload");
        let mut lines = std::io::BufReader::new(child.stdout.take().expect("piped stdout")).lines();
        let ready = lines.next().and_then(Result::ok).unwrap_or_default();
        assert_eq!(ready, "ready", "the upload watcher did not start");
        UploadWatch { child, lines }
    }
}

/// A running `blobcheck.py wait-upload`.
pub struct UploadWatch {
    child: Child,
    lines: std::io::Lines<std::io::BufReader<std::process::ChildStdout>>,
}

impl UploadWatch {
    /// Waits for the upload and returns the blob's name.
    pub fn wait(mut self) -> String {
        // Returns on the line, not once the watcher has exited (a Python interpreter takes
        // a while to end): the caller races the upload it found.
        let line = self.lines.next().and_then(Result::ok).unwrap_or_default();
        let found: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("no upload in progress was seen ({e}): {line:?}"));
        found["name"].as_str().unwrap_or_default().to_string()
    }
}

impl Drop for UploadWatch {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for BlobServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// What a measured run left.
pub struct Measured {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
    /// The child's peak resident set size in KiB: the last `VmHWM` read from
    /// `/proc/PID/status` while it ran (sampled every 5 ms; the kernel keeps the high-water
    /// mark, so only growth in its last few milliseconds could be missed). `wait4`'s
    /// `ru_maxrss` would not do: a child spawned from this large test process inherits
    /// the parent's high-water mark at exec.
    pub peak_rss_kib: u64,
}

impl Measured {
    pub fn last_line(&self) -> String {
        self.stdout.lines().last().unwrap_or_default().to_string()
    }

    pub fn describe(&self) -> String {
        format!(
            "status: {}\nstdout:\n{}\nstderr:\n{}",
            self.status, self.stdout, self.stderr
        )
    }
}

/// `VmHWM` of a live process, in KiB.
fn high_water_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Runs `cmd` to the end and reports its peak memory; a safety net kills it after
/// `limit`. Output goes to files, so a chatty child never blocks on a pipe.
pub fn run_measured(cmd: &mut Command, limit: Duration) -> Measured {
    let dir = tempfile::tempdir().expect("a directory for the output");
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .expect("spawn");
    let pid = child.id();
    let start = Instant::now();
    let mut peak = 0;
    let status = loop {
        // Read the mark before asking whether it exited: a zombie has no memory left.
        if let Some(kib) = high_water_kib(pid) {
            peak = peak.max(kib);
        }
        if let Some(status) = child.try_wait().expect("wait for the child") {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child did not finish within {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(5));
    };
    let read = |path: &Path| {
        let mut text = String::new();
        let _ = std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text));
        text
    };
    Measured {
        status,
        stdout: read(&out_path),
        stderr: read(&err_path),
        peak_rss_kib: peak,
    }
}

/// The SHA-256 of a file, lowercase hex, with the `sha2` crate (not Weft's code).
pub fn sha256_file(path: &Path) -> String {
    use sha2::Digest;
    let mut hasher = sha2::Sha256::new();
    let mut file = std::fs::File::open(path).expect("open a source file");
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buffer).expect("read a source file");
        if n == 0 {
            break;
        }
        hasher.update(&buffer[..n]);
    }
    hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}
