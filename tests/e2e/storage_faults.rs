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
    poll(Duration::from_secs(60), || {
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
