//! The HTTP API with a real client against the real `weft serve` on 127.0.0.1:0: the
//! seed's flow, every error status, keys, paging, terminate, suspend, purge and restart.

use crate::support::*;
use reqwest::StatusCode;
use reqwest::blocking::{Client, Response};
use serde_json::{Value, json};
use std::time::Duration;

const INSTANCES: &str = "runtime/webhooks/durabletask/instances";

fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("HTTP client")
}

fn json_body(response: Response) -> Value {
    response.json().expect("a JSON body")
}

impl Server {
    fn url(&self, path: &str) -> String {
        let separator = if path.contains('?') { '&' } else { '?' };
        format!("{}/{path}{separator}code={}", self.base, self.key)
    }

    fn start_json(&self, client: &Client, path: &str, body: &str) -> Response {
        client
            .post(self.url(path))
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .expect("POST")
    }

    /// Polls a status URL until the instance has ended; returns every status code seen
    /// with its body.
    fn poll_until_ended(&self, client: &Client, url: &str) -> Vec<(StatusCode, Value)> {
        poll(Duration::from_secs(300), || {
            let response = client.get(url).send().expect("GET status");
            let code = response.status();
            let body = json_body(response);
            let ended = code != StatusCode::ACCEPTED;
            Some((code, body)).filter(|_| ended).map(|seen| vec![seen])
        })
    }
}

fn testing_components() -> [&'static str; 3] {
    ["--components", TESTING_ORCHESTRATOR, TESTING_ACTIVITIES]
}

#[test]
fn the_seed_flow_starts_polls_and_completes_a_backup() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..20 {
        write(
            &site,
            &format!("logs/{i}.log"),
            &bytes(i, 1000 + i as usize),
        );
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    let server = Server::start(
        &scratch,
        "127.0.0.1:0",
        &["--max-activities", "1", "--test-activity-delay-ms", "100"],
    );
    let client = client();

    let root = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let response = server.start_json(&client, "orchestrators/E2_BackupSiteContent", &root);
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let location = response.headers()["location"]
        .to_str()
        .expect("Location")
        .to_string();
    let body = json_body(response);
    let id = body["id"].as_str().expect("id").to_string();
    assert_eq!(body["statusQueryGetUri"], location);
    assert!(
        location.starts_with(&format!("{}/{INSTANCES}/{id}?", server.base)),
        "{location}"
    );
    assert!(
        location.contains(&format!("code={}", server.key)),
        "{location}"
    );
    for field in [
        "sendEventPostUri",
        "terminatePostUri",
        "purgeHistoryDeleteUri",
        "suspendPostUri",
        "resumePostUri",
    ] {
        let url = body[field].as_str().unwrap_or_default();
        assert!(
            url.contains(&id) && url.contains(&format!("code={}", server.key)),
            "{field}: {url}"
        );
    }

    // While running: 202, runtimeStatus Running, and a Location to poll.
    let running = poll(Duration::from_secs(60), || {
        let response = client.get(&location).send().expect("GET status");
        let code = response.status();
        let has_location = response.headers().contains_key("location");
        let body = json_body(response);
        (body["runtimeStatus"] == "Running").then_some((code, has_location, body))
    });
    assert_eq!(running.0, StatusCode::ACCEPTED);
    assert!(
        running.1,
        "a running instance's status answer carries Location"
    );
    assert_eq!(running.2["input"], json!(site.to_str().unwrap_or_default()));

    let ended = server.poll_until_ended(&client, &location);
    let (code, body) = &ended[0];
    assert_eq!(*code, StatusCode::OK);
    assert_eq!(body["runtimeStatus"], "Completed");
    assert_eq!(body["output"], total);
    assert_eq!(body["name"], "E2_BackupSiteContent");
    assert_eq!(body["instanceId"], id.as_str());
    for field in ["createdTime", "lastUpdatedTime", "customStatus"] {
        assert!(body.get(field).is_some(), "{field} missing from {body}");
    }

    // History on request, with outputs only when asked for.
    let with_history = json_body(
        client
            .get(format!("{location}&showHistory=true"))
            .send()
            .expect("GET"),
    );
    let events = with_history["historyEvents"]
        .as_array()
        .expect("historyEvents");
    assert_eq!(
        events
            .iter()
            .filter(|e| e["eventType"] == "TaskCompleted")
            .count(),
        21
    );
    assert!(events.iter().all(|e| e.get("result").is_none()));
    let with_output = json_body(
        client
            .get(format!(
                "{location}&showHistory=true&showHistoryOutput=true"
            ))
            .send()
            .expect("GET"),
    );
    assert!(
        with_output["historyEvents"]
            .as_array()
            .expect("events")
            .iter()
            .any(|e| e.get("result").is_some())
    );
    let without_input = json_body(
        client
            .get(format!("{location}&showInput=false"))
            .send()
            .expect("GET"),
    );
    assert!(without_input.get("input").is_none());
}

#[test]
fn every_error_has_its_status() {
    let scratch = Scratch::new();
    let mut args = vec!["--max-activities", "2"];
    args.extend(testing_components());
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    let client = client();

    let response = client
        .post(server.url("orchestrators/FanOut"))
        .header("content-type", "text/plain")
        .body("3")
        .send()
        .expect("POST");
    assert_eq!(response.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);
    assert_eq!(
        server
            .start_json(&client, "orchestrators/FanOut", "{nope")
            .status(),
        StatusCode::BAD_REQUEST
    );
    let response = server.start_json(&client, "orchestrators/Nope", "1");
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    let message = json_body(response)["error"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    assert!(
        message.contains("unknown orchestrator 'Nope'") && message.contains("FanOut"),
        "{message}"
    );

    // A running instance id cannot be started again; an ended one can.
    let sleep = r#"{"name":"Sleep","input":60000}"#;
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/busy", sleep)
            .status(),
        StatusCode::ACCEPTED
    );
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/busy", sleep)
            .status(),
        StatusCode::CONFLICT
    );

    assert_eq!(
        client
            .get(server.url(&format!("{INSTANCES}/missing")))
            .send()
            .expect("GET")
            .status(),
        StatusCode::NOT_FOUND
    );

    // A failed instance: 400, or 500 when asked.
    let response = server.start_json(&client, "api/orchestrators/Panic/failing", "");
    assert_eq!(
        response.status(),
        StatusCode::ACCEPTED,
        "the /api prefix works too"
    );
    let status = server.url(&format!("{INSTANCES}/failing"));
    let ended = server.poll_until_ended(&client, &status);
    assert_eq!(ended[0].0, StatusCode::BAD_REQUEST);
    assert_eq!(ended[0].1["runtimeStatus"], "Failed");
    let code = client
        .get(format!("{status}&returnInternalServerErrorOnFailure=true"))
        .send()
        .expect("GET")
        .status();
    assert_eq!(code, StatusCode::INTERNAL_SERVER_ERROR);
    // An unknown orchestrator leaves an ended instance with that id alone; a known one
    // replaces it.
    assert_eq!(
        server
            .start_json(&client, "orchestrators/Nope/failing", "2")
            .status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        json_body(client.get(&status).send().expect("GET"))["name"],
        "Panic"
    );
    assert_eq!(
        server
            .start_json(&client, "orchestrators/FanOut/failing", "2")
            .status(),
        StatusCode::ACCEPTED
    );
    let bad_id = server.start_json(&client, "orchestrators/FanOut/has%20space", "2");
    assert_eq!(bad_id.status(), StatusCode::BAD_REQUEST);

    let raise = client
        .post(server.url(&format!("{INSTANCES}/busy/raiseEvent/Approval")))
        .send()
        .expect("POST");
    assert_eq!(raise.status(), StatusCode::NOT_IMPLEMENTED);
    let bad_filter = client
        .get(server.url(&format!("{INSTANCES}?runtimeStatus=Sleeping")))
        .send()
        .expect("GET");
    assert_eq!(bad_filter.status(), StatusCode::BAD_REQUEST);
    assert_eq!(
        client
            .get(server.url("no/such/route"))
            .send()
            .expect("GET")
            .status(),
        StatusCode::NOT_FOUND
    );
}

#[test]
fn every_route_requires_the_key() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch, "127.0.0.1:0", &[]);
    let client = client();
    let list = format!("{}/{INSTANCES}", server.base);
    assert_eq!(
        client.get(&list).send().expect("GET").status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(format!("{list}?code=wrong"))
            .send()
            .expect("GET")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(&list)
            .header("x-functions-key", "wrong")
            .send()
            .expect("GET")
            .status(),
        StatusCode::UNAUTHORIZED
    );
    assert_eq!(
        client
            .get(format!("{list}?code={}", server.key))
            .send()
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    assert_eq!(
        client
            .get(&list)
            .header("x-functions-key", &server.key)
            .send()
            .expect("GET")
            .status(),
        StatusCode::OK
    );
    let start = format!("{}/orchestrators/E2_BackupSiteContent", server.base);
    assert_eq!(
        client.post(&start).send().expect("POST").status(),
        StatusCode::UNAUTHORIZED
    );

    // The generated key is kept, owner-only, and reused by the next start.
    use std::os::unix::fs::PermissionsExt;
    let file = scratch.data_dir().join("api-key");
    let mode = std::fs::metadata(&file)
        .expect("key file")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let key = server.key.clone();
    server.kill();
    let again = Server::start(&scratch, "127.0.0.1:0", &[]);
    assert_eq!(again.key, key);
    again.kill();
    let chosen = Server::start(
        &scratch,
        "127.0.0.1:0",
        &["--key", "my-own-key-of-16-chars"],
    );
    assert_eq!(chosen.key, "my-own-key-of-16-chars");
}

#[test]
fn lists_page_with_the_continuation_header_and_filter() {
    let scratch = Scratch::new();
    let server = Server::start(&scratch, "127.0.0.1:0", &testing_components());
    let client = client();
    for i in 0..5 {
        let response = server.start_json(&client, &format!("orchestrators/FanOut/fan-{i}"), "3");
        assert_eq!(response.status(), StatusCode::ACCEPTED);
    }
    for i in 0..5 {
        server.poll_until_ended(&client, &server.url(&format!("{INSTANCES}/fan-{i}")));
    }
    let mut seen = Vec::new();
    let mut token: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut request =
            client.get(server.url(&format!("{INSTANCES}?top=2&runtimeStatus=Completed")));
        if let Some(token) = &token {
            request = request.header("x-ms-continuation-token", token);
        }
        let response = request.send().expect("GET list");
        assert_eq!(response.status(), StatusCode::OK);
        token = response
            .headers()
            .get("x-ms-continuation-token")
            .map(|v| v.to_str().unwrap_or_default().to_string());
        let page = json_body(response);
        let page = page.as_array().expect("a list");
        assert!(page.len() <= 2);
        seen.extend(
            page.iter()
                .map(|i| i["instanceId"].as_str().unwrap_or_default().to_string()),
        );
        pages += 1;
        if token.is_none() {
            break;
        }
    }
    assert_eq!(pages, 3);
    seen.sort();
    assert_eq!(seen, (0..5).map(|i| format!("fan-{i}")).collect::<Vec<_>>());
    let none = json_body(
        client
            .get(server.url(&format!("{INSTANCES}?runtimeStatus=Failed,Terminated")))
            .send()
            .expect("GET"),
    );
    assert_eq!(none, json!([]));
    let future = json_body(
        client
            .get(server.url(&format!("{INSTANCES}?createdTimeFrom=2999-01-01T00:00:00Z")))
            .send()
            .expect("GET"),
    );
    assert_eq!(future, json!([]));
}

#[test]
fn terminate_suspend_resume_and_purge() {
    let scratch = Scratch::new();
    // Instances idle for 100 ms are evicted, so terminate, suspend and resume also reach
    // instances that are not in memory.
    let mut args = vec!["--evict-after-ms", "100"];
    args.extend(testing_components());
    let server = Server::start(&scratch, "127.0.0.1:0", &args);
    let client = client();

    // Terminate a long sleep.
    let sleep = r#"{"name":"Sleep","input":60000}"#;
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/long", sleep)
            .status(),
        StatusCode::ACCEPTED
    );
    poll(Duration::from_secs(60), || {
        (count_events(&scratch, "TaskScheduled") >= 1).then_some(())
    });
    let status = server.url(&format!("{INSTANCES}/long"));
    let purge_running = client.delete(&status).send().expect("DELETE");
    assert_eq!(
        purge_running.status(),
        StatusCode::CONFLICT,
        "a running instance is not purged"
    );
    let terminate = client
        .post(server.url(&format!("{INSTANCES}/long/terminate?reason=enough")))
        .send()
        .expect("POST");
    assert_eq!(terminate.status(), StatusCode::ACCEPTED);
    let ended = server.poll_until_ended(&client, &status);
    assert_eq!(ended[0].0, StatusCode::BAD_REQUEST);
    assert_eq!(ended[0].1["runtimeStatus"], "Terminated");
    assert_eq!(ended[0].1["output"], "enough");
    let again = client
        .post(server.url(&format!("{INSTANCES}/long/terminate")))
        .send()
        .expect("POST");
    assert_eq!(again.status(), StatusCode::GONE);
    assert_eq!(
        client
            .post(server.url(&format!("{INSTANCES}/nobody/terminate")))
            .send()
            .expect("POST")
            .status(),
        StatusCode::NOT_FOUND
    );

    // Suspend while a short sleep runs: its completion waits until the instance is resumed.
    let short = r#"{"name":"Sleep","input":1000}"#;
    assert_eq!(
        server
            .start_json(&client, "orchestrators/CallActivity/nap", short)
            .status(),
        StatusCode::ACCEPTED
    );
    let nap = server.url(&format!("{INSTANCES}/nap"));
    poll(Duration::from_secs(60), || {
        (json_body(client.get(&nap).send().expect("GET"))["runtimeStatus"] == "Running")
            .then_some(())
    });
    assert_eq!(
        client
            .post(server.url(&format!("{INSTANCES}/nap/suspend?reason=hold")))
            .send()
            .expect("POST")
            .status(),
        StatusCode::ACCEPTED
    );
    poll(Duration::from_secs(60), || {
        let response = client.get(&nap).send().expect("GET");
        (response.status() == StatusCode::ACCEPTED
            && json_body(response)["runtimeStatus"] == "Suspended")
            .then_some(())
    });
    // The sleep finishes during the suspension; the instance stays suspended.
    poll(Duration::from_secs(60), || {
        let db = scratch.db();
        db.query_row(
            "SELECT COUNT(*) FROM inbox WHERE data LIKE '%TaskCompleted%'",
            [],
            |row| row.get::<_, i64>(0),
        )
        .ok()
        .filter(|count| *count == 1)
    });
    assert_eq!(
        json_body(client.get(&nap).send().expect("GET"))["runtimeStatus"],
        "Suspended"
    );
    assert_eq!(
        client
            .post(server.url(&format!("{INSTANCES}/nap/resume?reason=go")))
            .send()
            .expect("POST")
            .status(),
        StatusCode::ACCEPTED
    );
    let ended = server.poll_until_ended(&client, &nap);
    assert_eq!(
        (ended[0].0, ended[0].1["output"].clone()),
        (StatusCode::OK, json!(1000))
    );
    let history = scratch.history("nap");
    let kinds: Vec<_> = history
        .iter()
        .map(|e| e["eventType"].as_str().unwrap_or_default().to_string())
        .collect();
    let position = |kind: &str| kinds.iter().position(|k| k == kind).unwrap_or(usize::MAX);
    assert!(position("ExecutionSuspended") < position("ExecutionResumed"));
    assert!(
        position("ExecutionResumed") < position("TaskCompleted"),
        "{kinds:?}"
    );

    // Purge one, then many.
    let purge = client.delete(&nap).send().expect("DELETE");
    assert_eq!(purge.status(), StatusCode::OK);
    assert_eq!(json_body(purge)["instancesDeleted"], 1);
    assert_eq!(
        client.get(&nap).send().expect("GET").status(),
        StatusCode::NOT_FOUND
    );
    assert_eq!(
        client.delete(&nap).send().expect("DELETE").status(),
        StatusCode::NOT_FOUND
    );
    let many = client
        .delete(server.url(&format!("{INSTANCES}?runtimeStatus=Terminated")))
        .send()
        .expect("DELETE");
    assert_eq!(many.status(), StatusCode::OK);
    assert_eq!(json_body(many)["instancesDeleted"], 1);
    assert!(scratch.instance_ids().is_empty());
}

#[test]
fn a_restarted_server_finishes_the_backup_behind_the_same_status_url() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    for i in 0..60 {
        write(&site, &format!("f{i}.txt"), &bytes(i, 500));
    }
    let total: u64 = files_under(&site).iter().map(|(_, size)| size).sum();
    let slow = ["--max-activities", "2", "--test-activity-delay-ms", "50"];
    let server = Server::start(&scratch, "127.0.0.1:0", &slow);
    let client = client();
    let root = serde_json::to_string(site.to_str().unwrap_or_default()).expect("JSON");
    let response = server.start_json(&client, "orchestrators/E2_BackupSiteContent", &root);
    let location = response.headers()["location"]
        .to_str()
        .expect("Location")
        .to_string();
    poll(Duration::from_secs(120), || {
        (count_events(&scratch, "TaskCompleted") >= 10).then_some(())
    });
    let addr = server.addr.clone();
    server.kill();
    assert!(
        count_events(&scratch, "TaskCompleted") < 61,
        "the kill came before the end"
    );

    let restarted = Server::start(&scratch, &addr, &slow);
    assert_ne!(restarted.pid(), 0);
    let ended = restarted.poll_until_ended(&client, &location);
    assert_eq!(ended[0].0, StatusCode::OK);
    assert_eq!(ended[0].1["runtimeStatus"], "Completed");
    assert_eq!(ended[0].1["output"], total);
}
