//! The server under abuse: thousands of idle connections that never send a header neither
//! stop a client with a key from being served nor the running backup from completing, and
//! the server closes them; so it does a connection whose client never reads its answers.

use crate::support::*;
use std::net::TcpStream;
use std::time::Duration;

const IDLE: usize = 2000;

/// Raises this test's own descriptor limit so that it can hold the idle connections.
fn allow_descriptors(wanted: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is valid and writable for both calls.
    unsafe {
        assert_eq!(libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit), 0);
        assert!(
            limit.rlim_max >= wanted,
            "this test needs a hard descriptor limit of {wanted} (ulimit -Hn is {})",
            limit.rlim_max
        );
        limit.rlim_cur = limit.rlim_max;
        assert_eq!(libc::setrlimit(libc::RLIMIT_NOFILE, &limit), 0);
    }
}

#[test]
fn idle_connections_starve_neither_the_api_nor_the_backup() {
    allow_descriptors(3 * IDLE as u64);
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..200 {
        write(&site, &format!("f/{i}.txt"), &bytes(i, 100 + i as usize));
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    // Started with the common default soft limit of 1,024 descriptors, as a service
    // manager would; weft must raise it itself.
    let server = Server::start_with(
        &scratch,
        "127.0.0.1:0",
        &["--test-activity-delay-ms", "5", "--max-activities", "4"],
        |command| {
            use std::os::unix::process::CommandExt;
            // SAFETY: only async-signal-safe calls between fork and exec.
            unsafe {
                command.pre_exec(|| {
                    let mut limit = libc::rlimit {
                        rlim_cur: 0,
                        rlim_max: 0,
                    };
                    libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
                    limit.rlim_cur = limit.rlim_cur.min(1024);
                    libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
                    Ok(())
                });
            }
        },
    );
    let client = http_client();
    let root = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let started = server.start_json(&client, "orchestrators/E2_BackupSiteContent/abused", &root);
    assert_eq!(started.status(), 202);

    // Connections that never send a byte.
    let addr = server.addr.parse().expect("server address");
    let idle: Vec<TcpStream> = (0..IDLE)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok())
        .collect();
    assert_eq!(idle.len(), IDLE, "every idle connection was accepted");

    let status = client
        .get(server.url("runtime/webhooks/durabletask/instances/abused"))
        .send()
        .expect("a client with a key is served");
    assert!(status.status().is_success(), "{}", status.status());

    let done = server.wait_ended(&client, "abused");
    assert_eq!(done["runtimeStatus"], "Completed", "{done}");
    assert_eq!(done["output"], total);

    // A connection that never sends its headers is closed by the server.
    let mut silent = idle.into_iter().next().expect("an idle connection");
    silent
        .set_read_timeout(Some(Duration::from_secs(60)))
        .expect("read timeout");
    let mut buffer = [0u8; 16];
    match std::io::Read::read(&mut silent, &mut buffer) {
        Ok(0) => {}
        // A reset says the same: the server dropped it.
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
        other => panic!("the idle connection is still open: {other:?}"),
    }
}

#[test]
fn a_client_that_never_reads_its_answers_loses_its_connection() {
    use std::io::Write;
    let scratch = Scratch::new();
    let server = Server::start(&scratch, "127.0.0.1:0", &[]);
    let mut stream = TcpStream::connect(&server.addr).expect("connect");
    // Requests pipelined without end, their answers never read: once the buffers between
    // the two are full, the server's writes wait for this client, until the server drops
    // the connection. (Were it never dropped, the write below would give up after
    // `PATIENCE` with `WouldBlock`.)
    stream
        .set_write_timeout(Some(PATIENCE))
        .expect("write timeout");
    let requests = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".repeat(100);
    let ended = loop {
        if let Err(error) = stream.write_all(&requests) {
            break error;
        }
    };
    assert!(
        matches!(
            ended.kind(),
            std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
        ),
        "the server still holds the connection: {ended:?}"
    );
}
