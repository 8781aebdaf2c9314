//! Activities reach files only under the allowed directories: absolute paths elsewhere,
//! `..` escapes and symlinks that point out are refused, and no blob is written, even
//! when a directory is swapped for a symlink (or a file for a FIFO) while backups run.

use crate::support::*;

fn copy(scratch: &Scratch, path: &str) -> serde_json::Value {
    let input = serde_json::json!({ "name": "E2_CopyFileToBlob", "input": path }).to_string();
    let output = scratch.run_ok(&[
        "run",
        "CallActivity",
        "--input",
        &input,
        "--components",
        TESTING_ORCHESTRATOR,
        BACKUP_ACTIVITIES,
    ]);
    serde_json::from_str(&output).expect("CallActivity returns JSON")
}

#[test]
fn copies_outside_the_allowed_directories_are_denied_and_write_nothing() {
    let scratch = Scratch::new();
    let outside = tempfile::tempdir().expect("a directory outside");
    let secret = write(outside.path(), "secret.txt", b"top secret");
    write(scratch.path(), "site/ok.txt", b"fine");
    std::os::unix::fs::symlink(&secret, scratch.path().join("site/link")).expect("symlink");
    let escape = format!(
        "site/../../{}/secret.txt",
        outside
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
    );
    assert!(
        scratch.path().join(&escape).exists(),
        "the escape path names a real file"
    );

    for path in [
        "/etc/passwd",
        escape.as_str(),
        "site/link",
        secret.to_str().unwrap_or_default(),
    ] {
        let result = copy(&scratch, path);
        let error = result["error"].as_str().unwrap_or_default();
        assert_eq!(
            error,
            format!("access denied: {path} is outside the allowed directories"),
            "{result}"
        );
    }
    let blobs = scratch.data_dir().join("blobs");
    assert!(
        files_under(&blobs).is_empty(),
        "no blob was written: {:?}",
        files_under(&blobs)
    );

    // The same activity inside the allowed directory works.
    let result = copy(&scratch, "site/ok.txt");
    assert_eq!(result["bytes"], 4, "{result}");
}

#[test]
fn allow_dir_replaces_the_current_directory() {
    let scratch = Scratch::new();
    let elsewhere = tempfile::tempdir().expect("another directory");
    write(elsewhere.path(), "a/b.txt", b"12345");
    let root = serde_json::to_string(elsewhere.path().to_str().unwrap_or_default()).expect("JSON");
    let denied = scratch.run(&["run", "E2_BackupSiteContent", "--input", &root]);
    assert!(
        String::from_utf8_lossy(&denied.stderr).contains("outside the allowed directories"),
        "{}",
        describe(&denied)
    );
    let allowed = scratch.run_ok(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        &root,
        "--allow-dir",
        elsewhere.path().to_str().unwrap_or_default(),
    ]);
    assert_eq!(allowed, "5");
    // Once a directory is given, the current one is no longer allowed.
    write(scratch.path(), "here/c.txt", b"123");
    let here = scratch.run(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        "\"here\"",
        "--allow-dir",
        elsewhere.path().to_str().unwrap_or_default(),
    ]);
    assert!(
        String::from_utf8_lossy(&here.stderr).contains("outside the allowed directories"),
        "{}",
        describe(&here)
    );
}

#[test]
fn weft_s_own_files_stay_closed_even_inside_an_allowed_directory() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/index.html", b"<html>");
    // A first run creates the data dir (database, blobs) inside the current directory.
    assert_eq!(
        scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]),
        "6"
    );
    write(&scratch.data_dir(), "api-key", b"a-secret-key-of-weft");
    let blob = blob_of(&scratch.data_dir(), &scratch.path().join("site/index.html"));
    assert!(blob.exists(), "the first backup wrote {}", blob.display());
    let blob = blob.to_string_lossy().to_string();
    for path in [".weft/weft.db", ".weft/api-key", blob.as_str()] {
        let result = copy(&scratch, path);
        let error = result["error"].as_str().unwrap_or_default();
        assert!(error.starts_with("access denied"), "{path}: {result}");
    }
    // Backing up the whole current directory leaves the data dir out: no database, no key,
    // and no copy of the backup's own blobs.
    let total = scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\".\""]);
    assert_eq!(total, "6", "only site/index.html is backed up");
}

#[test]
fn special_files_are_skipped_by_listings_and_refused_without_blocking() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/a.txt", b"abc");
    let fifo = scratch.path().join("site/pipe");
    let made = std::process::Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .expect("run mkfifo");
    assert!(made.success());
    // The listing skips the FIFO; the backup completes.
    assert_eq!(
        scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]),
        "3"
    );
    // Copying it directly (as after a swap between listing and copy) is refused at once,
    // not waited on.
    let result = copy(&scratch, "site/pipe");
    let error = result["error"].as_str().unwrap_or_default();
    assert!(error.contains("not a regular file"), "{result}");
}

/// Watches `dir` (not recursively) for any open or read of it or of a file in it.
struct Watch {
    fd: i32,
}

impl Watch {
    fn new(dir: &std::path::Path) -> Self {
        use std::os::unix::ffi::OsStrExt;
        // SAFETY: plain system calls on a descriptor this value owns.
        let fd = unsafe { libc::inotify_init1(libc::IN_NONBLOCK | libc::IN_CLOEXEC) };
        assert!(
            fd >= 0,
            "inotify_init1: {}",
            std::io::Error::last_os_error()
        );
        let path = std::ffi::CString::new(dir.as_os_str().as_bytes()).expect("a C path");
        // SAFETY: `path` is a valid C string for the duration of the call.
        let wd =
            unsafe { libc::inotify_add_watch(fd, path.as_ptr(), libc::IN_OPEN | libc::IN_ACCESS) };
        assert!(
            wd >= 0,
            "inotify_add_watch: {}",
            std::io::Error::last_os_error()
        );
        Self { fd }
    }

    /// The events seen so far, as (mask, name) pairs.
    fn events(&self) -> Vec<(u32, String)> {
        let mut events = Vec::new();
        let mut buffer = vec![0u8; 64 << 10];
        loop {
            // SAFETY: `buffer` is valid for writes of its length.
            let read = unsafe { libc::read(self.fd, buffer.as_mut_ptr().cast(), buffer.len()) };
            if read <= 0 {
                return events;
            }
            let mut at = 0;
            while at + 16 <= read as usize {
                let field = |offset: usize| {
                    u32::from_ne_bytes(
                        buffer[at + offset..at + offset + 4]
                            .try_into()
                            .unwrap_or_default(),
                    )
                };
                let (mask, len) = (field(4), field(12) as usize);
                let name = String::from_utf8_lossy(&buffer[at + 16..at + 16 + len])
                    .trim_end_matches('\0')
                    .to_string();
                events.push((mask, name));
                at += 16 + len;
            }
        }
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        // SAFETY: the descriptor is owned by this value and closed once.
        unsafe { libc::close(self.fd) };
    }
}

#[test]
fn a_directory_swapped_for_a_symlink_during_backups_never_leads_outside() {
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    let outside = scratch.path().join("outside");
    let marker = format!("OUTSIDE-{}", std::process::id());
    for i in 0..20 {
        write(&site, &format!("d/{i}.txt"), &bytes(i, 3000));
        write(&site, &format!("keep/{i}.txt"), &bytes(100 + i, 3000));
        // The outside directory mirrors the names inside, so that an escape would find
        // a file to copy.
        write(&outside, &format!("{i}.txt"), marker.repeat(100).as_bytes());
    }
    write(&site, "f.txt", b"a regular file, now and then a FIFO");
    let watch = Watch::new(&outside);

    // A thread swaps `site/d` for a symlink to `outside` and back, and `site/f.txt` for a
    // FIFO and back, as fast as it can, while backups list and copy the tree.
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    let swaps = std::sync::Arc::new(AtomicUsize::new(0));
    let swapper = {
        let (stop, swaps) = (stop.clone(), swaps.clone());
        let (site, outside, spare) = (site.clone(), outside.clone(), scratch.path().to_path_buf());
        std::thread::spawn(move || {
            let (dir, parked_dir, link) =
                (site.join("d"), spare.join("parked-d"), spare.join("link"));
            let (file, parked_file, fifo) = (
                site.join("f.txt"),
                spare.join("parked-f"),
                spare.join("fifo"),
            );
            let fifo_c = std::ffi::CString::new(fifo.to_str().unwrap_or_default()).expect("C path");
            while !stop.load(Ordering::SeqCst) {
                std::fs::rename(&dir, &parked_dir).expect("park the directory");
                std::os::unix::fs::symlink(&outside, &link).expect("symlink");
                std::fs::rename(&link, &dir).expect("swap the symlink in");
                std::fs::rename(&file, &parked_file).expect("park the file");
                // SAFETY: `fifo_c` is a valid C string.
                let made = unsafe { libc::mkfifo(fifo_c.as_ptr(), 0o644) };
                assert_eq!(made, 0, "mkfifo: {}", std::io::Error::last_os_error());
                std::fs::rename(&fifo, &file).expect("swap the FIFO in");
                std::thread::sleep(std::time::Duration::from_millis(3));
                std::fs::rename(&dir, &link).expect("take the symlink out");
                std::fs::remove_file(&link).expect("remove the symlink");
                std::fs::rename(&parked_dir, &dir).expect("put the directory back");
                std::fs::remove_file(&file).expect("remove the FIFO");
                std::fs::rename(&parked_file, &file).expect("put the file back");
                swaps.fetch_add(1, Ordering::SeqCst);
                std::thread::sleep(std::time::Duration::from_millis(3));
            }
        })
    };

    let site_arg = site.to_str().unwrap_or_default().to_string();
    let mut outcomes = Vec::new();
    for round in 0..6 {
        let id = format!("race-{round}");
        let child = scratch
            .weft(&[
                "run",
                "E2_BackupSiteContent",
                "--input",
                &serde_json::to_string(&site_arg).expect("JSON"),
                "--instance-id",
                &id,
                "--allow-dir",
                &site_arg,
            ])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("spawn weft");
        // Neither the symlink nor the FIFO may hang a backup: each run ends.
        let output = wait_output(child, std::time::Duration::from_secs(300));
        outcomes.push((id, output));
    }
    stop.store(true, Ordering::SeqCst);
    swapper.join().expect("the swapping thread");
    assert!(swaps.load(Ordering::SeqCst) > 0, "the tree was swapped");

    // Each backup either completed or failed with a refusal, never another way.
    for (id, output) in &outcomes {
        if !output.status.success() {
            let status = scratch.status(id);
            let message = status["output"].to_string();
            assert!(
                message.contains("access denied") || message.contains("not a regular file"),
                "{id}: {status}\n{}",
                describe(output)
            );
        }
    }
    // No byte of the outside files reached the blob store under any name...
    for (blob, _) in files_under(&scratch.data_dir().join("blobs")) {
        let content = std::fs::read(&blob).expect("read a blob");
        assert!(
            !content
                .windows(marker.len())
                .any(|w| w == marker.as_bytes()),
            "{} holds bytes from outside the allowed directory",
            blob.display()
        );
    }
    // ...and the outside directory and its files were never opened nor read.
    let events = watch.events();
    assert!(
        events.is_empty(),
        "the outside directory was touched: {events:?}"
    );
    // The watch does see a read (this test's own).
    std::fs::read(outside.join("0.txt")).expect("read an outside file");
    assert!(
        watch.events().iter().any(|(_, name)| name == "0.txt"),
        "the watch reports reads"
    );
    // The files that stayed inside all along were backed up by every completed run.
    for i in 0..20 {
        let file = site.join(format!("keep/{i}.txt"));
        let blob = blob_of(&scratch.data_dir(), &file);
        assert_eq!(
            std::fs::read(&blob).expect("a blob of a file that never moved"),
            bytes(100 + i, 3000)
        );
    }
}

#[test]
fn a_tree_wider_than_the_descriptor_limit_is_listed_and_backed_up_whole() {
    use std::os::unix::process::CommandExt;
    const WIDTH: usize = 1500;
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..WIDTH {
        write(&site, &format!("d{i}/f.txt"), &bytes(i as u64, 1 + i % 7));
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    // Far fewer descriptors than the tree has directories, soft and hard alike, so that
    // weft cannot raise the limit: a walk that held every directory open would run out.
    let mut command = scratch.weft(&["run", "E2_BackupSiteContent", "--input", "\"site\""]);
    // SAFETY: only async-signal-safe calls between fork and exec.
    unsafe {
        command.pre_exec(|| {
            let limit = libc::rlimit {
                rlim_cur: 256,
                rlim_max: 256,
            };
            libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
            Ok(())
        });
    }
    let child = command
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn weft");
    let output = wait_output(child, std::time::Duration::from_secs(600));
    assert!(output.status.success(), "{}", describe(&output));
    assert_eq!(
        last_line(&output),
        total.to_string(),
        "{}",
        describe(&output)
    );
    assert_eq!(
        files_under(&scratch.data_dir().join("blobs")).len(),
        WIDTH,
        "one blob per file"
    );
}
