//! The dashboard of `weft serve` in a real headless Chromium (WebDriver) and with plain
//! HTTP requests: logging in with the key, following a backup to Completed with its total
//! and one timeline bar per copied file, the controls (suspend, resume, terminate, purge)
//! through their confirmation pages, a wrong key refused, nothing served without the key,
//! guest text escaped, cross-site posts refused. The 1,000-file backup test also writes
//! the README's screenshots (`WEFT_SCREENSHOTS=docs/screenshots` puts them there).

use crate::browser::{Browser, DEADLINE};
use crate::support::*;
use reqwest::StatusCode;
use reqwest::blocking::Client;
use serde_json::Value;
use std::path::{Path, PathBuf};
use std::time::Duration;

const INSTANCES: &str = "runtime/webhooks/durabletask/instances";

/// A client that shows redirects instead of following them, with a safety deadline.
fn client() -> Client {
    Client::builder()
        .timeout(Duration::from_secs(60))
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .expect("HTTP client")
}

/// A urlencoded form body.
fn form(pairs: &[(&str, &str)]) -> String {
    form_urlencoded::Serializer::new(String::new())
        .extend_pairs(pairs)
        .finish()
}

/// Starts a backup of `site` over the API; returns its id.
fn start_backup(server: &Server, client: &Client, site: &Path) -> String {
    let root = serde_json::to_string(site.to_str().expect("a UTF-8 path")).expect("JSON");
    let response = server.start_json(client, "orchestrators/E2_BackupSiteContent", &root);
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let body: Value = response.json().expect("a JSON body");
    body["id"].as_str().expect("an id").to_string()
}

/// A tree of `count` files of different sizes under `root`; returns their total size.
fn tree(root: &Path, count: u64) -> u64 {
    for i in 0..count {
        write(
            root,
            &format!("dir{}/file{i}.bin", i % 7),
            &bytes(i, 100 + (i as usize * 37) % 5000),
        );
    }
    files_under(root).iter().map(|(_, size)| size).sum()
}

/// Logs in through the login page: a wrong key first (refused, still signed out), then
/// the right one. Checks that the cookie is out of the page's reach.
fn log_in(browser: &Browser, key: &str) {
    browser.open("/");
    assert_eq!(
        browser.path(),
        "/ui/login",
        "signed out, / leads to the login page"
    );
    browser.fill("#key", "not-the-key-not-the-key");
    browser.click("form.login button[type=submit]");
    let error = browser.wait_text("#login-error", |text| !text.is_empty());
    assert!(error.contains("wrong"), "{error}");
    browser.open("/");
    assert_eq!(browser.path(), "/ui/login", "a wrong key does not sign in");

    assert_accessible(browser);
    // By keyboard: the key, then Enter.
    browser.fill("#key", &format!("{key}{ENTER}"));
    browser.wait_text("main h1", |text| text == "Instances");
    browser.wait_path("/");
    assert_accessible(browser);
    let cookies = browser.eval("return document.cookie;");
    assert_eq!(cookies, "", "the key's cookie is HttpOnly");
}

/// The WebDriver code of the Enter key.
const ENTER: &str = "\u{E007}";

/// What a screen reader and a keyboard need of the page shown: a language, one `h1`, a
/// `main` landmark, a label for every field, a name for every link and button, unique ids.
fn assert_accessible(browser: &Browser) {
    let problems = browser.eval(
        "const problems = [];\
         if (!document.documentElement.lang) problems.push('no lang');\
         if (document.querySelectorAll('h1').length !== 1) problems.push('not one h1');\
         if (!document.querySelector('main')) problems.push('no main landmark');\
         document.querySelectorAll('input:not([type=hidden]), textarea, select').forEach(e => {\
           if (!e.labels || e.labels.length === 0) problems.push('unlabelled field ' + (e.id || e.name)); });\
         document.querySelectorAll('a[href], button').forEach(e => {\
           if (!e.textContent.trim() && !e.getAttribute('aria-label')) problems.push('nameless ' + e.outerHTML.slice(0, 80)); });\
         const ids = Array.from(document.querySelectorAll('[id]')).map(e => e.id);\
         ids.filter((id, i) => ids.indexOf(id) !== i).forEach(id => problems.push('duplicate id ' + id));\
         return problems;",
    );
    assert_eq!(problems, serde_json::json!([]), "on {}", browser.path());
}

/// No URL the page holds carries the key.
fn assert_no_key_in_urls(browser: &Browser, key: &str) {
    let urls = browser.urls();
    assert!(!urls.is_empty());
    for url in urls {
        assert!(!url.contains(key), "the key is in a URL: {url}");
    }
}

/// The text of the status cell of instance `id` in the list.
fn row_status(browser: &Browser, id: &str) -> Option<String> {
    browser.text(&format!("tr[data-id='{id}'] .status"))
}

#[test]
fn a_browser_logs_in_and_follows_a_backup_to_completed_with_one_bar_per_file() {
    let scratch = Scratch::new();
    let site = scratch.path().join("site");
    let total = tree(&site, 5);
    let server = Server::start(
        &scratch,
        "127.0.0.1:0",
        &["--max-activities", "1", "--test-activity-delay-ms", "300"],
    );
    let client = client();
    let browser = Browser::start(&server.base, 1280, 1000);
    log_in(&browser, &server.key);

    // Started over the API while the list is open: the list shows it without a reload.
    let id = start_backup(&server, &client, &site);
    let completed = poll(DEADLINE, || {
        row_status(&browser, &id).filter(|status| status == "Completed")
    });
    assert_eq!(completed, "Completed");
    let name = browser
        .text(&format!("tr[data-id='{id}'] td a"))
        .expect("the row links to the instance");
    assert_eq!(name, "E2_BackupSiteContent");
    assert_no_key_in_urls(&browser, &server.key);

    browser.click(&format!("tr[data-id='{id}'] td a"));
    browser.wait_path(&format!("/ui/instances/{id}"));
    browser.wait_text("#status", |text| text.contains("Completed"));
    assert_accessible(&browser);
    let output = browser.text("#output").expect("the output");
    assert_eq!(output.trim(), total.to_string(), "the total bytes");
    assert_eq!(
        browser.text("#progress-text").as_deref(),
        Some("6 completed, 0 failed, 0 pending of 6 scheduled")
    );
    // One bar per copied file, each one task, completed.
    let bars = browser.find_all("svg.chart rect.bar[data-name='E2_CopyFileToBlob']");
    assert_eq!(bars.len(), 5, "one bar per copied file");
    for bar in &bars {
        assert_eq!(browser.attr(bar, "data-tasks").as_deref(), Some("1"));
        let class = browser.attr(bar, "class").unwrap_or_default();
        assert!(class.contains("completed"), "{class}");
    }
    assert_eq!(
        browser
            .find_all("svg.chart rect.bar[data-name='E2_GetFileList']")
            .len(),
        1
    );
    // The raw history lists every event.
    let events = scratch.history(&id).len();
    assert_eq!(browser.find_all("table.history tbody tr").len(), events);
    assert_no_key_in_urls(&browser, &server.key);
}

#[test]
fn a_browser_suspends_resumes_terminates_and_purges_a_running_instance() {
    let scratch = Scratch::new();
    let server = Server::testing(&scratch);
    let client = client();
    // Two activities that sleep for an hour: the instance runs until it is ended.
    let response = server.start_json(
        &client,
        "orchestrators/CallActivity/sleeper",
        r#"{"name":"Sleep","input":3600000,"count":2}"#,
    );
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    let browser = Browser::start(&server.base, 1280, 1000);
    log_in(&browser, &server.key);
    poll(DEADLINE, || {
        row_status(&browser, "sleeper").filter(|status| status == "Running")
    });
    browser.click("tr[data-id='sleeper'] td a");
    browser.wait_text("#status", |text| text.contains("Running"));
    assert_accessible(&browser);
    browser.wait_text("#progress-text", |text| {
        text == "0 completed, 0 failed, 2 pending of 2 scheduled"
    });

    // Each control goes through its confirmation page, then back to the instance.
    let control = |action: &str, reason: Option<&str>, status: &str| {
        browser.click(&format!("a.action-{action}"));
        browser.wait_path(&format!("/ui/instances/sleeper/confirm/{action}"));
        assert_accessible(&browser);
        match reason {
            // By keyboard: Enter in the field submits the form.
            Some(reason) => browser.fill("#reason", &format!("{reason}{ENTER}")),
            None => browser.click("#confirm"),
        }
        browser.wait_path(&format!("/ui/instances/sleeper?done={action}"));
        // The live part follows the instance until it has acted on the request.
        browser.wait_text("#status", |text| text.contains(status));
        assert_eq!(server.instance(&client, "sleeper")["runtimeStatus"], status);
        // The controls offered are those of the status the page was drawn in.
        browser.open("/ui/instances/sleeper");
    };
    control("suspend", Some("a pause"), "Suspended");
    control("resume", None, "Running");
    control("terminate", Some("enough <b>sleep</b>"), "Terminated");
    let history = scratch.history("sleeper");
    assert!(
        history
            .iter()
            .any(|event| event["eventType"] == "ExecutionTerminated"
                && event["reason"] == "enough <b>sleep</b>"),
        "the reason reached the history"
    );

    // Purge: the instance is gone, and the list says so.
    browser.click("a.action-purge");
    browser.wait_path("/ui/instances/sleeper/confirm/purge");
    browser.click("#confirm");
    browser.wait_path("/?done=purge");
    assert!(
        browser
            .text(".notice")
            .is_some_and(|text| text.contains("purged"))
    );
    let gone = client
        .get(server.url(&format!("{INSTANCES}/sleeper")))
        .send()
        .expect("GET status");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
    assert!(row_status(&browser, "sleeper").is_none());
}

/// Every dashboard route, as (method, path).
fn routes(id: &str) -> Vec<(&'static str, String)> {
    let mut routes = vec![
        ("GET", "/".to_string()),
        ("GET", "/ui".to_string()),
        ("GET", "/ui/rows".to_string()),
        ("GET", "/ui/assets/dashboard.js".to_string()),
        ("GET", format!("/ui/instances/{id}")),
        ("GET", format!("/ui/instances/{id}/live")),
        ("POST", "/ui/logout".to_string()),
    ];
    for action in [
        "terminate",
        "suspend",
        "resume",
        "rewind",
        "restart",
        "raise-event",
        "purge",
    ] {
        routes.push(("GET", format!("/ui/instances/{id}/confirm/{action}")));
        routes.push(("POST", format!("/ui/instances/{id}/{action}")));
    }
    routes
}

#[test]
fn without_the_key_no_dashboard_page_or_data_is_served() {
    let scratch = Scratch::new();
    let server = Server::testing(&scratch);
    let client = client();
    // A guest's text with HTML in it: the input, and the output that echoes it.
    let response = server.start_json(
        &client,
        "orchestrators/CallActivity/xss",
        r#"{"name":"Echo","input":"<script>alert('input')</script><img src=x onerror=alert(1)>"}"#,
    );
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        server.wait_ended(&client, "xss")["runtimeStatus"],
        "Completed"
    );
    let url = |path: &str| format!("{}{path}", server.base);

    // Without a cookie, a wrong cookie, or a key in the URL: pages lead to the login page,
    // data is a 401, and nothing tells of the instance.
    let wrong = "weft_key=0123456789abcdef0123456789abcdef";
    for cookie in [None, Some(wrong)] {
        for (method, path) in routes("xss") {
            let mut request = match method {
                "GET" => client.get(url(&path)),
                _ => client
                    .post(url(&path))
                    .header("content-type", "application/x-www-form-urlencoded")
                    .body("reason=x"),
            };
            if let Some(cookie) = cookie {
                request = request.header("cookie", cookie);
            }
            let response = request.send().expect("a dashboard request");
            let status = response.status();
            let location = response
                .headers()
                .get("location")
                .and_then(|value| value.to_str().ok())
                .map(str::to_string);
            let body = response.text().expect("a body");
            assert!(
                status == StatusCode::UNAUTHORIZED
                    || (status == StatusCode::SEE_OTHER
                        && location.as_deref() == Some("/ui/login")),
                "{method} {path} with {cookie:?}: {status} {location:?}"
            );
            assert!(
                !body.contains("xss") && !body.contains("Echo"),
                "{method} {path}: {body}"
            );
        }
    }
    // The key in a URL is not how the dashboard takes it.
    let response = client
        .get(url(&format!("/ui/rows?code={}", server.key)))
        .send()
        .expect("GET rows");
    assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(
        server.instance(&client, "xss")["runtimeStatus"],
        "Completed"
    );

    // The login page and its stylesheet are all there is to see.
    let login = client.get(url("/ui/login")).send().expect("GET login");
    assert_eq!(login.status(), StatusCode::OK);
    for (name, value) in [
        ("x-content-type-options", "nosniff"),
        ("x-frame-options", "DENY"),
    ] {
        assert_eq!(login.headers()[name], value);
    }
    let policy = login.headers()["content-security-policy"]
        .to_str()
        .expect("a policy")
        .to_string();
    assert!(policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"));
    assert!(!policy.contains("unsafe-inline"));
    let css = client
        .get(url("/ui/assets/dashboard.css"))
        .send()
        .expect("GET css");
    assert_eq!(css.status(), StatusCode::OK);

    // A wrong key at the login page is refused and sets no cookie.
    let refused = client
        .post(url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", "0123456789abcdef0123456789abcdef")]))
        .send()
        .expect("POST login");
    assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
    assert!(refused.headers().get("set-cookie").is_none());

    // The right key sets a strict, HttpOnly cookie that opens the dashboard and the API.
    let signed_in = client
        .post(url("/ui/login"))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", server.key.as_str())]))
        .send()
        .expect("POST login");
    assert_eq!(signed_in.status(), StatusCode::SEE_OTHER);
    let set_cookie = signed_in.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .to_string();
    for attribute in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(set_cookie.contains(attribute), "{set_cookie}");
    }
    let cookie = set_cookie
        .split(';')
        .next()
        .expect("name=value")
        .to_string();
    let get = |path: &str| {
        client
            .get(url(path))
            .header("cookie", &cookie)
            .send()
            .expect("GET with the cookie")
    };
    let list = get("/");
    assert_eq!(list.status(), StatusCode::OK);
    assert!(list.text().expect("a page").contains("data-id=\"xss\""));
    assert_eq!(get(&format!("/{INSTANCES}/xss")).status(), StatusCode::OK);

    // Guests' text is escaped wherever it is shown.
    let page = get("/ui/instances/xss").text().expect("the instance page");
    assert!(
        page.contains("&lt;script&gt;alert("),
        "the input is shown escaped"
    );
    assert!(
        !page.contains("<script>alert"),
        "no guest script in the page"
    );
    assert!(!page.contains("<img src=x"), "no guest element in the page");
    // Nothing inline that the policy would have to allow: one script, from a file.
    assert_eq!(page.matches("<script").count(), 1);
    assert!(page.contains("<script src=\"/ui/assets/dashboard.js\" defer></script>"));
    assert!(!page.contains(" style=") && !page.contains(" onclick="));
    let live = get("/ui/instances/xss/live").text().expect("the live part");
    assert!(
        live.contains("&lt;img src=x"),
        "the output is shown escaped: {live}"
    );

    // A failed activity is a red bar with its two retries marked, listed with its message.
    let response = server.start_json(
        &client,
        "orchestrators/CallActivity/failing",
        r#"{"name":"Fail","input":7,"retry":{"maxAttempts":3,"firstRetryIntervalMs":10}}"#,
    );
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    server.wait_ended(&client, "failing");
    let live = get("/ui/instances/failing/live")
        .text()
        .expect("the live part");
    assert!(live.contains("class=\"bar activity failed\""), "{live}");
    assert!(live.contains("Failed tasks (1)"), "{live}");
    assert!(live.contains("failed on purpose with 7"), "{live}");
    assert_eq!(live.matches("<rect class=\"retry\"").count(), 2, "{live}");

    // Sub-orchestrations are bars too, and link to their own instances.
    let response = server.start_json(
        &client,
        "orchestrators/CallSubOrchestrator/parent",
        r#"{"name":"CallActivity","input":{"name":"Echo","input":5},"count":2}"#,
    );
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        server.wait_ended(&client, "parent")["runtimeStatus"],
        "Completed"
    );
    let live = get("/ui/instances/parent/live")
        .text()
        .expect("the live part");
    assert_eq!(
        live.matches("class=\"bar sub-orchestration completed\"")
            .count(),
        2,
        "{live}"
    );
    for child in ["parent%3A0", "parent%3A1"] {
        assert!(
            live.contains(&format!("href=\"/ui/instances/{child}\"")),
            "{live}"
        );
        assert_eq!(
            get(&format!("/ui/instances/{child}")).status(),
            StatusCode::OK
        );
    }

    // Filters: by status, name and id prefix.
    let listed = |query: &str| {
        get(&format!("/?{query}"))
            .text()
            .expect("a page")
            .contains("data-id=\"xss\"")
    };
    assert!(listed("status=Completed"));
    assert!(!listed("status=Running"));
    assert!(listed("name=callact&prefix=xs"));
    assert!(!listed("prefix=nope"));
    assert!(!listed("name=Backup"));

    // A post that relies on the cookie must come from the dashboard's own pages.
    let forged = client
        .post(url("/ui/instances/xss/purge"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "cross-site")
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("reason", "forged")]))
        .send()
        .expect("a forged POST");
    assert_eq!(forged.status(), StatusCode::FORBIDDEN);
    let forged_api = client
        .delete(url(&format!("/{INSTANCES}/xss")))
        .header("cookie", &cookie)
        .header("origin", "http://evil.example")
        .send()
        .expect("a forged DELETE");
    assert_eq!(forged_api.status(), StatusCode::FORBIDDEN);
    assert_eq!(
        server.instance(&client, "xss")["runtimeStatus"],
        "Completed"
    );
    // From its own origin, the same post purges.
    let own = client
        .post(url("/ui/instances/xss/purge"))
        .header("cookie", &cookie)
        .header("sec-fetch-site", "same-origin")
        .send()
        .expect("a same-origin POST");
    assert_eq!(own.status(), StatusCode::SEE_OTHER);
    let gone = client
        .get(server.url(&format!("{INSTANCES}/xss")))
        .send()
        .expect("GET status");
    assert_eq!(gone.status(), StatusCode::NOT_FOUND);
}

/// Where the screenshots go: `WEFT_SCREENSHOTS` (e.g. `docs/screenshots`, relative to the
/// workspace), or the test's scratch target directory.
fn screenshot_dir() -> PathBuf {
    match std::env::var_os("WEFT_SCREENSHOTS") {
        Some(dir) => Path::new(env!("CARGO_MANIFEST_DIR")).join("..").join(dir),
        None => Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots"),
    }
}

#[test]
fn a_thousand_file_backup_is_drawn_in_bounded_rows_and_photographed() {
    let scratch = Scratch::new();
    let site = scratch.path().join("www");
    let total = tree(&site, 1000);
    let server = Server::start(
        &scratch,
        "127.0.0.1:0",
        &["--max-activities", "8", "--test-activity-delay-ms", "20"],
    );
    let client = client();
    let id = start_backup(&server, &client, &site);
    assert_eq!(server.wait_ended(&client, &id)["output"], total);
    // Company for it in the list: a backup of a directory that is not there, a small one,
    // one terminated, and one still running when the picture is taken.
    let missing = start_backup(&server, &client, &scratch.path().join("missing"));
    assert_eq!(
        server.wait_ended(&client, &missing)["runtimeStatus"],
        "Failed"
    );
    let docs = scratch.path().join("docs");
    let docs_total = tree(&docs, 12);
    let small = start_backup(&server, &client, &docs);
    assert_eq!(server.wait_ended(&client, &small)["output"], docs_total);
    let stopped = start_backup(&server, &client, &site);
    let response = client
        .post(server.url(&format!("{INSTANCES}/{stopped}/terminate?reason=demo")))
        .send()
        .expect("terminate");
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(
        server.wait_ended(&client, &stopped)["runtimeStatus"],
        "Terminated"
    );
    start_backup(&server, &client, &site);

    let browser = Browser::start(&server.base, 1280, 800);
    log_in(&browser, &server.key);
    for (instance, status) in [
        (&id, "Completed"),
        (&missing, "Failed"),
        (&small, "Completed"),
        (&stopped, "Terminated"),
    ] {
        poll(DEADLINE, || {
            row_status(&browser, instance).filter(|shown| shown == status)
        });
    }
    let dir = screenshot_dir();
    std::fs::create_dir_all(&dir).expect("the screenshot directory");
    std::fs::write(dir.join("instances.png"), browser.screenshot()).expect("write a PNG");

    browser.click(&format!("tr[data-id='{id}'] td a"));
    browser.wait_text("#status", |text| text.contains("Completed"));
    assert_eq!(
        browser.text("#progress-text").as_deref(),
        Some("1001 completed, 0 failed, 0 pending of 1001 scheduled")
    );
    // 1,001 tasks in at most 200 rows that account for every one of them.
    let bars = browser.find_all("svg.chart rect.bar");
    assert!(bars.len() <= 200, "{} rows", bars.len());
    let tasks: usize = bars
        .iter()
        .map(|bar| {
            browser
                .attr(bar, "data-tasks")
                .and_then(|tasks| tasks.parse::<usize>().ok())
                .expect("a task count")
        })
        .sum();
    assert_eq!(tasks, 1001);
    // The history is paged: 100 events a page.
    assert_eq!(browser.find_all("table.history tbody tr").len(), 100);
    browser.set_size(1280, 1700);
    browser.eval("window.scrollTo(0, 0); return null;");
    std::fs::write(dir.join("instance.png"), browser.screenshot()).expect("write a PNG");
}

/// Signs in over plain HTTP; returns the cookie to send.
fn sign_in(client: &Client, server: &Server) -> String {
    let response = client
        .post(format!("{}/ui/login", server.base))
        .header("content-type", "application/x-www-form-urlencoded")
        .body(form(&[("key", server.key.as_str())]))
        .send()
        .expect("POST login");
    assert_eq!(response.status(), StatusCode::SEE_OTHER);
    response.headers()["set-cookie"]
        .to_str()
        .expect("a cookie")
        .split(';')
        .next()
        .expect("name=value")
        .to_string()
}

#[test]
fn the_dashboard_raises_events_restarts_and_refuses_as_the_api_does() {
    let scratch = Scratch::new();
    let server = Server::start(
        &scratch,
        "127.0.0.1:0",
        &[
            "--components",
            env!("WEFT_GUEST_SAMPLES_ORCHESTRATOR"),
            env!("WEFT_GUEST_SAMPLES_ACTIVITIES"),
        ],
    );
    let client = client();
    let cookie = sign_in(&client, &server);
    let post = |path: &str, fields: &[(&str, &str)]| {
        client
            .post(format!("{}{path}", server.base))
            .header("cookie", &cookie)
            .header("sec-fetch-site", "same-origin")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(form(fields))
            .send()
            .expect("a dashboard POST")
    };
    let location = |response: &reqwest::blocking::Response| {
        response.headers()["location"]
            .to_str()
            .expect("a location")
            .to_string()
    };
    let response = server.start_json(
        &client,
        "orchestrators/WaitForEvent/waiter",
        r#"{"name":"Go","count":1}"#,
    );
    assert_eq!(response.status(), StatusCode::ACCEPTED);

    // Data that is not JSON is refused as the API refuses it.
    let refused = post(
        "/ui/instances/waiter/raise-event",
        &[("event", "Go"), ("data", "{not json")],
    );
    assert_eq!(refused.status(), StatusCode::BAD_REQUEST);
    assert!(
        refused
            .text()
            .expect("a page")
            .contains("Invalid JSON content")
    );

    let raised = post(
        "/ui/instances/waiter/raise-event",
        &[("event", "Go"), ("data", r#"{"x": "<b>bold</b>"}"#)],
    );
    assert_eq!(raised.status(), StatusCode::SEE_OTHER);
    assert_eq!(location(&raised), "/ui/instances/waiter?done=raise-event");
    let ended = server.wait_ended(&client, "waiter");
    assert_eq!(ended["runtimeStatus"], "Completed");
    assert_eq!(ended["output"], serde_json::json!([{"x": "<b>bold</b>"}]));
    let live = client
        .get(format!("{}/ui/instances/waiter/live", server.base))
        .header("cookie", &cookie)
        .send()
        .expect("GET live")
        .text()
        .expect("the live part");
    assert!(live.contains("class=\"bar event completed\""), "{live}");
    assert!(live.contains("class=\"mark EventRaised\""), "{live}");

    // Refusals carry the API's status and message.
    let ended_already = post("/ui/instances/waiter/terminate", &[("reason", "late")]);
    assert_eq!(ended_already.status(), StatusCode::GONE);
    let not_failed = post("/ui/instances/waiter/rewind", &[]);
    assert_eq!(not_failed.status(), StatusCode::PRECONDITION_FAILED);
    assert!(
        not_failed
            .text()
            .expect("a page")
            .contains("only orchestrations in the &quot;Failed&quot; state can be rewound")
    );
    let unknown = post("/ui/instances/nobody/purge", &[]);
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);

    // A restart under a new id starts the same orchestrator with the same input.
    let restarted = post("/ui/instances/waiter/restart", &[("new_id", "true")]);
    assert_eq!(restarted.status(), StatusCode::SEE_OTHER);
    let target = location(&restarted);
    let new_id = target
        .strip_prefix("/ui/instances/")
        .and_then(|rest| rest.strip_suffix("?done=restart"))
        .expect("the new instance's page")
        .to_string();
    assert_ne!(new_id, "waiter");
    let status = server.instance(&client, &new_id);
    assert_eq!(status["name"], "WaitForEvent");
    assert_eq!(
        status["input"],
        serde_json::json!({"name": "Go", "count": 1})
    );
    // Under the same id, once ended: the instance runs again.
    let again = post("/ui/instances/waiter/restart", &[]);
    assert_eq!(location(&again), "/ui/instances/waiter?done=restart");
    poll(DEADLINE, || {
        (server.instance(&client, "waiter")["runtimeStatus"] == "Running").then_some(())
    });
    // Not ended: a second same-id restart conflicts.
    let conflict = post("/ui/instances/waiter/restart", &[]);
    assert_eq!(conflict.status(), StatusCode::CONFLICT);
}
