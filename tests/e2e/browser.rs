//! A real headless Chromium for end-to-end tests, driven over WebDriver: Debian's
//! `chromium` and `chromedriver` (package `chromium-driver`), started on a free loopback
//! port for one test and stopped with it, and a synchronous wrapper over `fantoccini`.
//! A missing browser or driver fails the test and says how to install it.

use crate::support::poll;
use fantoccini::elements::Element;
use fantoccini::{Client, ClientBuilder, Locator};
use std::io::BufRead;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

const INSTALL: &str =
    "install them with `apt-get install -y chromium chromium-driver` (Debian; .ci/run does it)";

/// How long a page, an element or a condition may take before the test fails (a safety
/// net, not a timing assertion).
pub const DEADLINE: Duration = Duration::from_secs(120);

/// The first of `names` on `PATH`.
fn on_path(names: &[&str]) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .flat_map(|dir| names.iter().map(move |name| dir.join(name)))
        .find(|candidate| candidate.is_file())
}

/// A chromedriver child and a WebDriver session of headless Chromium on it.
pub struct Browser {
    runtime: tokio::runtime::Runtime,
    client: Option<Client>,
    driver: Child,
    /// The server the pages come from, e.g. `http://127.0.0.1:PORT`.
    pub base: String,
}

impl Browser {
    /// Starts chromedriver on a free loopback port and a headless Chromium session with a
    /// window of `width` × `height`, for pages under `base`.
    pub fn start(base: &str, width: u32, height: u32) -> Self {
        let chromium = on_path(&["chromium", "chromium-browser"])
            .unwrap_or_else(|| panic!("chromium is not installed: {INSTALL}"));
        let chromedriver = on_path(&["chromedriver"])
            .unwrap_or_else(|| panic!("chromedriver is not installed: {INSTALL}"));
        let mut driver = Command::new(chromedriver)
            .arg("--port=0")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start chromedriver ({error}): {INSTALL}"));
        // chromedriver says which port it took: "... started successfully on port N."
        let stdout = driver.stdout.take().expect("piped stdout");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(rest) = line.split("on port ").nth(1)
                    && line.contains("started successfully")
                {
                    let _ = tx.send(rest.trim_end_matches('.').trim().to_string());
                }
            }
        });
        let port = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(port) => port,
            Err(_) => {
                let _ = driver.kill();
                panic!("chromedriver did not start within a minute: {INSTALL}");
            }
        };
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a tokio runtime");
        let mut capabilities = serde_json::Map::new();
        capabilities.insert(
            "goog:chromeOptions".to_string(),
            serde_json::json!({
                "binary": chromium,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--no-first-run",
                    "--hide-scrollbars",
                    format!("--window-size={width},{height}"),
                ],
            }),
        );
        let client = runtime.block_on(async {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            tokio::time::timeout(
                DEADLINE,
                ClientBuilder::new(connector)
                    .capabilities(capabilities)
                    .connect(&format!("http://127.0.0.1:{port}")),
            )
            .await
        });
        let client = match client {
            Ok(Ok(client)) => client,
            other => {
                let _ = driver.kill();
                panic!("cannot open a Chromium session ({other:?}): {INSTALL}");
            }
        };
        Self {
            runtime,
            client: Some(client),
            driver,
            base: base.to_string(),
        }
    }

    fn client(&self) -> &Client {
        self.client.as_ref().expect("an open session")
    }

    /// Runs one WebDriver command, failing the test after [`DEADLINE`].
    pub fn run<T, E: std::fmt::Debug>(
        &self,
        what: &str,
        command: impl std::future::Future<Output = Result<T, E>>,
    ) -> T {
        match self
            .runtime
            .block_on(async { tokio::time::timeout(DEADLINE, command).await })
        {
            Ok(Ok(value)) => value,
            Ok(Err(error)) => panic!("{what}: {error:?}"),
            Err(_) => panic!("{what}: no answer within {DEADLINE:?}"),
        }
    }

    /// Opens `path` on the server.
    pub fn open(&self, path: &str) {
        let url = format!("{}{path}", self.base);
        self.run(&format!("open {url}"), self.client().goto(&url));
    }

    /// The path (and query) of the page shown.
    pub fn path(&self) -> String {
        let url = self.run("the current URL", self.client().current_url());
        match url.query() {
            Some(query) => format!("{}?{query}", url.path()),
            None => url.path().to_string(),
        }
    }

    /// Polls until the page shown is `path` (a click's navigation may still be under way).
    pub fn wait_path(&self, path: &str) {
        poll(DEADLINE, || (self.path() == path).then_some(()));
    }

    pub fn find(&self, css: &str) -> Element {
        self.run(
            &format!("find {css}"),
            self.client().find(Locator::Css(css)),
        )
    }

    pub fn find_all(&self, css: &str) -> Vec<Element> {
        self.run(
            &format!("find all {css}"),
            self.client().find_all(Locator::Css(css)),
        )
    }

    /// The text of the first element `css` selects, or `None` if there is none.
    pub fn text(&self, css: &str) -> Option<String> {
        let found = self.run(
            &format!("find all {css}"),
            self.client().find_all(Locator::Css(css)),
        );
        let element = found.into_iter().next()?;
        // The element may be replaced by a live update between the find and the read.
        self.runtime
            .block_on(async { tokio::time::timeout(DEADLINE, element.text()).await })
            .ok()?
            .ok()
    }

    pub fn attr(&self, element: &Element, name: &str) -> Option<String> {
        self.run(&format!("attribute {name}"), element.attr(name))
    }

    /// Clicks the first element `css` selects. A live update may replace it between the
    /// find and the click; then it is found again.
    pub fn click(&self, css: &str) {
        poll(DEADLINE, || {
            let element = self.find(css);
            let clicked = self.run(&format!("click {css}"), async {
                match element.click().await {
                    Ok(_) => Ok(true),
                    Err(error) if error.is_stale_element_reference() => Ok(false),
                    Err(error) => Err(error),
                }
            });
            clicked.then_some(())
        });
    }

    /// Types `text` into the field `css` selects, replacing what it held.
    pub fn fill(&self, css: &str, text: &str) {
        let element = self.find(css);
        self.run(&format!("clear {css}"), element.clear());
        self.run(&format!("type into {css}"), element.send_keys(text));
    }

    /// Evaluates `script` (a function body) in the page.
    pub fn eval(&self, script: &str) -> serde_json::Value {
        self.run("run a script", self.client().execute(script, Vec::new()))
    }

    /// Polls until the text of `css` satisfies `want`; returns it.
    pub fn wait_text(&self, css: &str, want: impl Fn(&str) -> bool) -> String {
        poll(DEADLINE, || {
            let text = self.text(css)?;
            want(&text).then_some(text)
        })
    }

    /// Every URL the page holds (links, form targets, sources, live-update sources) and
    /// its own address.
    pub fn urls(&self) -> Vec<String> {
        let found = self.eval(
            "return Array.from(document.querySelectorAll('[href],[action],[src],[data-live-src]'))\
               .flatMap(e => ['href','action','src','data-live-src'].map(a => e.getAttribute(a)))\
               .filter(v => v !== null).concat([location.href]);",
        );
        serde_json::from_value(found).unwrap_or_default()
    }

    /// A PNG of the window.
    pub fn screenshot(&self) -> Vec<u8> {
        self.run("a screenshot", self.client().screenshot())
    }

    pub fn set_size(&self, width: u32, height: u32) {
        self.run(
            "resize the window",
            self.client().set_window_size(width, height),
        );
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if let Some(client) = self.client.take() {
            let _ = self.runtime.block_on(async {
                tokio::time::timeout(Duration::from_secs(30), client.close()).await
            });
        }
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}
