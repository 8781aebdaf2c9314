//! Snapshots of what users and stored histories depend on: the history of a one-file
//! backup and its status document, with ids, times and paths scrubbed. A change here is
//! a change to the stored format or the API, and must be deliberate.

use crate::support::*;

/// Replaces what differs between runs: the scratch path, instance ids and timestamps.
fn scrub(scratch: &Scratch, id: &str, text: &str) -> String {
    let mut text = text
        .replace(scratch.path().to_str().unwrap_or_default(), "<scratch>")
        .replace(id, "<id>");
    // RFC 3339 times: 2026-01-02T03:04:05(.678)Z
    let mut out = String::new();
    while let Some(start) = text.find("\"20") {
        let rest = &text[start + 1..];
        let end = rest.find('"').unwrap_or(0);
        let candidate = &rest[..end];
        let is_time = candidate.len() >= 20
            && candidate.as_bytes().get(10) == Some(&b'T')
            && candidate.ends_with('Z');
        out.push_str(&text[..start + 1]);
        out.push_str(if is_time { "<time>" } else { candidate });
        text = rest[end..].to_string();
    }
    out.push_str(&text);
    out
}

#[test]
fn a_one_file_backup_records_this_history_and_status() {
    let scratch = Scratch::new();
    write(scratch.path(), "site/only.txt", b"twelve bytes");
    assert_eq!(
        scratch.run_ok(&["run", "E2_BackupSiteContent", "--input", "\"site\""]),
        "12"
    );
    let id = scratch.instance_ids().remove(0);

    let history = scratch.run(&["history", &id]);
    insta::assert_snapshot!(
        "backup_history",
        scrub(&scratch, &id, &String::from_utf8_lossy(&history.stdout))
    );
    let status = scratch.run(&["status", &id]);
    insta::assert_snapshot!(
        "backup_status",
        scrub(&scratch, &id, &String::from_utf8_lossy(&status.stdout))
    );
}
