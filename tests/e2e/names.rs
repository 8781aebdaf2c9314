//! File names that are not UTF-8: the backup counts and names them (lossily) as skipped,
//! never silently leaves them out of its total, and never copies another file in their
//! place.

use crate::support::*;
use std::ffi::OsStr;
use std::os::unix::ffi::OsStrExt;

#[test]
fn names_that_are_not_utf8_are_reported_as_skipped_never_silently_left_out() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    let kept = [
        write(&site, "a.txt", b"abc"),
        write(&site, "sub/b.txt", &bytes(1, 1000)),
        // A real name with U+FFFD that no other name shadows is backed up as usual.
        write(&site, "ok\u{FFFD}.txt", b"fine"),
    ];
    // Linux allows any bytes but `/` and NUL in a name.
    std::fs::write(site.join(OsStr::from_bytes(b"bad\xff.txt")), b"SECRET-BAD").expect("write");
    // A real file whose name reads the same as the lossy form of the one above: neither
    // may be copied in the other's place.
    write(&site, "bad\u{FFFD}.txt", b"SECRET-SHADOWED");
    let bad_dir = site.join(OsStr::from_bytes(b"dir\xfe"));
    std::fs::create_dir_all(&bad_dir).expect("mkdir");
    std::fs::write(bad_dir.join("in.txt"), b"SECRET-INSIDE").expect("write");

    let output = scratch.run(&[
        "run",
        "E2_BackupSiteContent",
        "--input",
        "\"site\"",
        "--instance-id",
        "names",
    ]);
    assert!(output.status.success(), "{}", describe(&output));
    let total: usize = 3 + 1000 + 4;
    assert_eq!(
        last_line(&output),
        total.to_string(),
        "{}",
        describe(&output)
    );

    let status = scratch.status("names");
    assert_eq!(status["runtimeStatus"], "Completed", "{status}");
    assert_eq!(status["customStatus"]["skippedCount"], 3, "{status}");
    let mut skipped: Vec<String> = status["customStatus"]["skipped"]
        .as_array()
        .unwrap_or_else(|| panic!("skipped is a list: {status}"))
        .iter()
        .map(|path| path.as_str().unwrap_or_default().to_string())
        .collect();
    skipped.sort();
    let base = std::fs::canonicalize(&site).expect("canonical site");
    let base = base.display();
    assert_eq!(
        skipped,
        vec![
            format!("{base}/bad\u{FFFD}.txt"),
            format!("{base}/bad\u{FFFD}.txt"),
            format!("{base}/dir\u{FFFD}/in.txt"),
        ],
        "{status}"
    );
    // The history says why each was skipped.
    let history = String::from_utf8_lossy(&scratch.run(&["history", "names"]).stdout).into_owned();
    assert_eq!(
        history.matches("the name is not UTF-8").count(),
        3,
        "{history}"
    );

    // The files that could be named are backed up byte for byte, and none of the others'
    // bytes reached the blob store under any name.
    for file in &kept {
        let blob = blob_of(
            &scratch.data_dir(),
            &std::fs::canonicalize(file).expect("file"),
        );
        assert_eq!(
            std::fs::read(&blob).unwrap_or_else(|e| panic!("{}: {e}", blob.display())),
            std::fs::read(file).expect("source")
        );
    }
    for (blob, _) in files_under(&scratch.data_dir().join("blobs")) {
        let content = std::fs::read(&blob).expect("read a blob");
        assert!(
            !content.windows(7).any(|w| w == b"SECRET-"),
            "{} holds a skipped file's bytes",
            blob.display()
        );
    }
}
