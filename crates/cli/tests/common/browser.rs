//! Headless Chromium for the browser tests (`browser.rs`,
//! `browser_feeds.rs`), driven through chromedriver with the W3C WebDriver
//! protocol (the `fantoccini` client). Included by those tests alone, with
//! `#[path = "common/browser.rs"] mod browser;`, so that the other tests do
//! not build the WebDriver client.
//!
//! It needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`, which `.ci/run` installs); see
//! [`installed`].

#![allow(dead_code, unreachable_pub, clippy::unwrap_used, clippy::expect_used)]

use std::fs;
use std::io::{BufRead, BufReader};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use serde_json::{Value, json};

use crate::common::{START_LIMIT, wait_for};

pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// How long the browser may take for one thing it is waited for (a page,
/// metadata, a seek); generous, for two busy cores.
pub const BROWSER_LIMIT: Duration = Duration::from_secs(90);

/// Whether Chromium and chromedriver are installed. Where they are not,
/// the caller returns without testing, after a message; under `CI=true` a
/// missing browser fails the test instead (CI must run it).
pub fn installed() -> bool {
    let Some(missing) = [CHROMIUM, CHROMEDRIVER]
        .into_iter()
        .find(|path| !Path::new(path).exists())
    else {
        return true;
    };
    assert_ne!(
        std::env::var("CI").as_deref(),
        Ok("true"),
        "{missing} is missing, and CI must run this test \
         (.ci/run installs the Debian packages chromium and chromium-driver)"
    );
    eprintln!("not run: {missing} is missing (apt-get install chromium chromium-driver)");
    false
}

/// Runs `body` as a script in the page (a returned promise is awaited).
pub async fn script(client: &Client, body: &str) -> Value {
    match tokio::time::timeout(BROWSER_LIMIT, client.execute(body, Vec::new())).await {
        Ok(result) => result.unwrap_or_else(|error| panic!("{body}\nfailed: {error}")),
        Err(_) => panic!("{body}\ntook over {BROWSER_LIMIT:?}"),
    }
}

/// Asks `check` every 100 ms until it answers `Some`, for at most
/// [`BROWSER_LIMIT`]; its answer.
pub async fn until<T, F, Fut>(what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + BROWSER_LIMIT;
    loop {
        if let Some(answer) = check().await {
            return answer;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {BROWSER_LIMIT:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Runs `body` every 100 ms until it returns `true`, for at most
/// [`BROWSER_LIMIT`].
pub async fn poll(client: &Client, what: &str, body: &str) {
    until(what, || async {
        (script(client, body).await == Value::Bool(true)).then_some(())
    })
    .await;
}

/// Keeps `screenshot` (a PNG from the browser) as
/// `target/test-artifacts/browser/<file>`, after checking that it is a
/// PNG of some size; returns where it is.
pub fn keep_screenshot(file: &str, screenshot: &[u8]) -> PathBuf {
    let artifacts =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/test-artifacts/browser");
    fs::create_dir_all(&artifacts).unwrap();
    let path = artifacts.join(file);
    fs::write(&path, screenshot).unwrap();
    assert!(
        screenshot.starts_with(b"\x89PNG\r\n\x1a\n") && &screenshot[12..16] == b"IHDR",
        "the screenshot is not a PNG"
    );
    let width = u32::from_be_bytes(screenshot[16..20].try_into().unwrap());
    let height = u32::from_be_bytes(screenshot[20..24].try_into().unwrap());
    assert!(width > 0 && height > 0, "an empty screenshot");
    let path = path.canonicalize().unwrap_or(path);
    eprintln!(
        "screenshot {width}x{height}, {} bytes: {}",
        screenshot.len(),
        path.display()
    );
    path
}

/// chromedriver on a free port of 127.0.0.1, with the Chromium it starts:
/// the session is deleted (which closes Chromium) and the process group
/// killed when dropped.
pub struct ChromeDriver {
    child: Child,
    pub url: String,
    pub session: Option<String>,
    log: PathBuf,
}

impl ChromeDriver {
    pub fn start(log: &Path) -> Self {
        // chromedriver picks its port (`--port=0`) and then binds it again
        // for IPv6; a process that takes that port in between (any test
        // listening on port 0 meanwhile) makes it exit at once with
        // "bind() failed: Address already in use". A few fresh tries.
        const TRIES: usize = 3;
        for attempt in 1..=TRIES {
            match Self::try_start(log) {
                Ok(driver) => return driver,
                Err(driver) if attempt < TRIES && driver.log_text().contains("bind() failed") => {
                    eprintln!("chromedriver lost its port to another process; starting it again");
                }
                Err(driver) => panic!(
                    "chromedriver did not start within {START_LIMIT:?}; its log:\n{}",
                    driver.log_text()
                ),
            }
        }
        unreachable!("the last try returns or panics")
    }

    /// One start of chromedriver; `Err` with the exited (or silent)
    /// driver, for its log, when it did not say its port.
    fn try_start(log: &Path) -> Result<Self, Self> {
        let mut child = Command::new(CHROMEDRIVER)
            .args(["--port=0", "--log-level=WARNING"])
            .arg(format!("--log-path={}", log.display()))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            // Its own process group, so that what is left of Chromium
            // can be ended with it.
            .process_group(0)
            .spawn()
            .unwrap();
        // "ChromeDriver was started successfully on port 41811."
        let (port_tx, port_rx) = mpsc::channel();
        let stdout = child.stdout.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Some((_, port)) = line.split_once("started successfully on port ") {
                    let _ = port_tx.send(port.trim_end_matches('.').to_owned());
                }
            }
        });
        let mut driver = Self {
            child,
            url: String::new(),
            session: None,
            log: log.to_owned(),
        };
        let Ok(port) = port_rx.recv_timeout(START_LIMIT) else {
            return Err(driver);
        };
        driver.url = format!("http://127.0.0.1:{port}");
        wait_for("chromedriver to be ready", START_LIMIT, || {
            ureq::get(format!("{}/status", driver.url))
                .call()
                .ok()
                .and_then(|mut answer| answer.body_mut().read_json::<Value>().ok())
                .is_some_and(|status| status["value"]["ready"] == Value::Bool(true))
        });
        Ok(driver)
    }

    /// A new session: Chromium, headless, with a window of `width` ×
    /// `height` pixels.
    pub async fn session(&mut self, width: u32, height: u32) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    "--autoplay-policy=no-user-gesture-required",
                    format!("--window-size={width},{height}"),
                ],
            },
            // The DevTools network events, read by `browser.rs`.
            "goog:loggingPrefs": { "performance": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connect = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await;
        let client = match connect {
            Ok(client) => client,
            Err(error) => panic!(
                "chromedriver could not start Chromium: {error}; its log:\n{}",
                self.log_text()
            ),
        };
        self.session = client.session_id().await.unwrap();
        client
    }

    /// Closes `client`'s session (and Chromium with it).
    pub async fn close(&mut self, client: Client) {
        client.close().await.unwrap();
        self.session = None;
    }

    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for ChromeDriver {
    fn drop(&mut self) {
        if let Some(session) = self.session.take() {
            // Closes Chromium; a failed test may leave the session open.
            let agent: ureq::Agent = ureq::Agent::config_builder()
                .timeout_global(Some(Duration::from_secs(20)))
                .build()
                .into();
            let _ = agent
                .delete(format!("{}/session/{session}", self.url))
                .call();
        }
        let _ = killpg(Pid::from_raw(self.child.id() as i32), Signal::SIGKILL);
        let _ = self.child.wait();
    }
}

impl ChromeDriver {
    /// As [`ChromeDriver::session`], with what the page downloads saved
    /// into `downloads` without asking (the web app's saved files).
    pub async fn session_saving_to(&mut self, width: u32, height: u32, downloads: &Path) -> Client {
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new",
                    "--no-sandbox",
                    "--disable-gpu",
                    "--disable-dev-shm-usage",
                    format!("--window-size={width},{height}"),
                ],
                "prefs": {
                    "download.default_directory": downloads.display().to_string(),
                    "download.prompt_for_download": false,
                    "download.directory_upgrade": true,
                    "safebrowsing.enabled": false,
                },
            },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!()
        };
        let connect = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&self.url)
            .await;
        let client = match connect {
            Ok(client) => client,
            Err(error) => panic!(
                "chromedriver could not start Chromium: {error}; its log:\n{}",
                self.log_text()
            ),
        };
        self.session = client.session_id().await.unwrap();
        client
    }
}

/// Waits until the browser has saved `name` in `downloads` completely
/// (`expected` bytes, no `.crdownload` left), for at most
/// [`BROWSER_LIMIT`]; its bytes.
pub async fn saved_file(downloads: &Path, name: &str, expected: usize) -> Vec<u8> {
    let path = downloads.join(name);
    let what = format!("the browser to save {}", path.display());
    until(&what, || async {
        let partial = fs::read_dir(downloads)
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .any(|entry| entry.file_name().to_string_lossy().ends_with(".crdownload"))
            })
            .unwrap_or(false);
        fs::read(&path)
            .ok()
            .filter(|bytes| bytes.len() == expected && !partial)
    })
    .await
}
