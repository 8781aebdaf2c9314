//! Storage that fails for a while: the host waits or retries in process, and the instance
//! ends Completed in the same `weft serve` process, with every blob correct.

use crate::support::*;
use std::time::{Duration, Instant};

#[test]
fn an_external_lock_on_the_database_delays_but_does_not_fail_a_backup() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..60 {
        write(&site, &format!("d/{i}.bin"), &bytes(i, 1000 + i as usize));
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    let server = Server::start(
        &scratch,
        "127.0.0.1:0",
        &["--max-activities", "2", "--test-activity-delay-ms", "50"],
    );
    let client = http_client();
    let root = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let started = server.start_json(&client, "orchestrators/E2_BackupSiteContent/locked", &root);
    assert_eq!(started.status(), 202);
    poll(PATIENCE, || {
        (count_events(&scratch, "TaskCompleted") >= 3).then_some(())
    });

    // Another program holds the write lock for 15 seconds.
    let db = rusqlite::Connection::open(scratch.data_dir().join("weft.db")).expect("open");
    db.execute_batch("BEGIN EXCLUSIVE").expect("take the lock");
    let held_since = Instant::now();
    let during = count_events(&scratch, "TaskCompleted");
    while held_since.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(
        count_events(&scratch, "TaskCompleted"),
        during,
        "nothing was written while the lock was held"
    );
    db.execute_batch("COMMIT").expect("release the lock");
    drop(db);

    let done = server.wait_ended(&client, "locked");
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["output"], total);
    for (file, _) in files_under(&site) {
        let blob = blob_of(&scratch.data_dir(), &file);
        assert_eq!(
            std::fs::read(&blob).expect("the blob exists"),
            std::fs::read(&file).expect("the source exists"),
            "{}",
            blob.display()
        );
    }
    drop(server);
}

/// How this test gets a small filesystem of its own for the data dir: a tmpfs mounted in
/// a private mount namespace, inside a user namespace when this user is not root.
fn namespace_prefix() -> Vec<&'static str> {
    let works = |args: &[&str]| {
        std::process::Command::new("unshare")
            .args(args)
            .args(["sh", "-c", "mount -t tmpfs -o size=1m weft-probe /mnt"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .is_ok_and(|status| status.success())
    };
    for prefix in [
        &["--user", "--map-root-user", "--mount"][..],
        &["--mount"][..],
    ] {
        if works(prefix) {
            return prefix.to_vec();
        }
    }
    panic!(
        "this test needs a small tmpfs of its own: `unshare --user --map-root-user --mount` \
         (user namespaces: sysctl kernel.unprivileged_userns_clone=1, \
         user.max_user_namespaces > 0) or `unshare --mount` as root, and util-linux's \
         `unshare` (apt-get install util-linux); neither worked here"
    );
}

/// Fills the filesystem that holds `dir` to the last byte; returns the open filler.
fn fill(dir: &std::path::Path) -> std::fs::File {
    use std::io::Write;
    let mut filler = std::fs::File::create(dir.join("filler")).expect("create the filler");
    for chunk in [1 << 20, 4096, 1] {
        let block = vec![0u8; chunk];
        while filler.write(&block).is_ok_and(|written| written > 0) {}
    }
    let full = filler.write(&[0]).expect_err("the disk is full");
    assert_eq!(full.raw_os_error(), Some(libc::ENOSPC), "{full}");
    filler
}

/// Waits until the server's log says `needle`, that is, until it has met the full disk.
fn wait_for_log(log: &std::path::Path, needle: &str) {
    poll(PATIENCE, || {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains(needle)
            .then_some(())
    });
}

#[test]
fn a_data_dir_on_a_full_disk_delays_but_does_not_fail_a_backup() {
    use sha2::{Digest, Sha256};
    let prefix = namespace_prefix();
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..150 {
        write(&site, &format!("d/{i}.bin"), &bytes(i, 50_000 + i as usize));
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    let data_dir = scratch.data_dir();
    // `weft serve` runs with its data dir on a 32 MiB tmpfs and its blobs (under the data
    // dir) on a 24 MiB one, which only it (and this test, through /proc/PID/root) can see,
    // so that each can be filled alone: the copy activity's own retries must not be spent
    // on a full blob disk, nor the instance failed for a full database disk.
    let server = Server::start_with(
        &scratch,
        "127.0.0.1:0",
        &["--max-activities", "1", "--test-activity-delay-ms", "100"],
        |command| {
            let mut wrapped = std::process::Command::new("unshare");
            wrapped.args(&prefix).args([
                "sh",
                "-c",
                "mkdir -p \"$1\" && mount -t tmpfs -o size=32m weft-data \"$1\" \
                 && mkdir \"$1/blobs\" && mount -t tmpfs -o size=24m weft-blobs \"$1/blobs\" \
                 && shift && exec \"$@\"",
                "sh",
            ]);
            wrapped
                .arg(&data_dir)
                .arg(command.get_program())
                .args(command.get_args());
            for (key, value) in command.get_envs() {
                if let Some(value) = value {
                    wrapped.env(key, value);
                }
            }
            wrapped
                .current_dir(scratch.path())
                .stdin(std::process::Stdio::null());
            *command = wrapped;
        },
    );
    // `unshare` and `sh` exec, so the server's pid is weft's, and its root shows its mounts.
    let seen = std::path::PathBuf::from(format!("/proc/{}/root", server.pid()))
        .join(data_dir.strip_prefix("/").expect("absolute data dir"));
    let client = http_client();
    let root = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let started = server.start_json(&client, "orchestrators/E2_BackupSiteContent/full", &root);
    assert_eq!(started.status(), 202);
    // SQLite resolves /proc/PID/root to this namespace's `/`, so progress is read from
    // the blobs the backup has written.
    let blobs = seen.join("blobs/backups");
    poll(PATIENCE, || (files_under(&blobs).len() >= 3).then_some(()));

    // The blob disk fills: copies meet ENOSPC. It stays full a few seconds after the
    // server has met it, far longer than the copy's three attempts, 0.5 s and 1 s apart.
    let log = scratch.path().join("serve.log");
    let filler = fill(&seen.join("blobs"));
    wait_for_log(&log, "No space left on device");
    std::thread::sleep(Duration::from_secs(4));
    drop(filler);
    std::fs::remove_file(seen.join("blobs/filler")).expect("free the blob disk");

    // Then the database's disk fills: commits meet SQLITE_FULL.
    let filler = fill(&seen);
    wait_for_log(&log, "database or disk is full");
    std::thread::sleep(Duration::from_secs(4));
    drop(filler);
    std::fs::remove_file(seen.join("filler")).expect("free the data disk");

    // The same process finishes the backup, without a restart.
    let started = Instant::now();
    let done = loop {
        let body = server.instance(&client, "full");
        if body["runtimeStatus"] != "Running" && body["runtimeStatus"] != "Pending" {
            break body;
        }
        if started.elapsed() > Duration::from_secs(180) {
            break body;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let tail: Vec<&str> = text
        .lines()
        .rev()
        .filter(|line| !line.contains(" INFO "))
        .take(60)
        .collect();
    assert_eq!(
        done["runtimeStatus"],
        "Completed",
        "{done}\nthe server's warnings and errors, last first:\n{}",
        tail.join("\n")
    );
    assert_eq!(done["output"], total);
    for (file, _) in files_under(&site) {
        let blob = blobs.join(file.strip_prefix("/").expect("absolute path"));
        let stored = std::fs::read(&blob)
            .unwrap_or_else(|e| panic!("the blob {} exists: {e}", blob.display()));
        let source = std::fs::read(&file).expect("the source exists");
        assert_eq!(
            Sha256::digest(&stored),
            Sha256::digest(&source),
            "{}",
            blob.display()
        );
        assert_eq!(stored, source, "{}", blob.display());
    }
    drop(server);
}
