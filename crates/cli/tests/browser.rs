//! The gateway in a real browser: headless Chromium, driven through
//! chromedriver with the W3C WebDriver protocol (the `fantoccini` client),
//! opens a site put on one `kith up` node and published under its name
//! (`/n/<name>/`), through another node's gateway.
//! The page renders with its stylesheet and its image, a `<video>` seeks to
//! the middle of a 12 MiB file and plays from there, Chromium's own network
//! log shows the `Range` request the seek sent and the gateway's `206` with
//! its `Content-Range`, and a screenshot is kept in
//! `target/test-artifacts/browser/`.
//!
//! It needs `/usr/bin/chromium` and `/usr/bin/chromedriver` (Debian's
//! `chromium` and `chromium-driver`, which `.ci/run` installs). Without
//! them it is not run, with a message; under `CI=true` it fails instead.
//! The browser helpers are in `common/browser.rs`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::time::{Duration, Instant};

use browser::*;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// The media file: PCM WAV, 8 kHz, 16-bit mono, 800 s: 12.8 MB, so that
/// its middle lies far past what Chromium reads ahead for metadata, and a
/// seek there needs a `Range` request of its own.
const RATE: u32 = 8_000;
const SECONDS: u32 = 800;

/// Where a site is read in a browser: the folder's capability under the
/// gateway's `/k/`. One place to change when the test reads the site by its
/// name (`/n/<name>/`) instead.
fn site_url(gateway: &str, name: &str) -> String {
    format!("{gateway}n/{name}/")
}

#[test]
fn chromium_renders_a_site_and_seeks_a_video_through_another_nodes_gateway() {
    if !browser::installed() {
        return;
    }
    let started = Instant::now();
    let temp = tempfile::tempdir().unwrap();

    // Three nodes and 2-of-3 shares: the reader holds one share of each
    // stripe and must fetch another from the network for every byte.
    let nodes = start_network(temp.path(), 3, 2, |_| Vec::new());
    let site = temp.path().join("site");
    let wav_len = write_site(&site);
    let put = kith(
        &nodes[0].dir,
        &["put", "--shares", "2/3", site.to_str().unwrap()],
    );
    assert!(put.status.success(), "{}", text(&put.stderr));
    let cap = text(&put.stdout).trim().to_owned();
    // Published under the putter's name; the browser opens the name.
    let published = kith(&nodes[0].dir, &["name", "publish", &cap]);
    assert!(published.status.success(), "{}", text(&published.stderr));
    let name = text(&published.stdout).trim().to_owned();
    let printed = kith(&nodes[2].dir, &["gateway"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let gateway = text(&printed.stdout).trim().to_owned();
    let url = site_url(&gateway, &name);
    eprintln!(
        "site put on {} and read at {url} ({:.1?} so far)",
        nodes[0].peer_id,
        started.elapsed()
    );

    let mut driver = ChromeDriver::start(&temp.path().join("chromedriver.log"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let screenshot = runtime.block_on(async {
        let client = driver.session(800, 600).await;
        let screenshot = visit(&client, &driver, &url, wav_len).await;
        driver.close(client).await;
        screenshot
    });

    // The screenshot, kept as an artifact of the run.
    keep_screenshot("site.png", &screenshot);
    eprintln!("the test took {:.1?}", started.elapsed());
}

/// Writes the site into `dir`: a page, its stylesheet, an image and a WAV
/// file; returns the WAV file's length.
fn write_site(dir: &Path) -> u64 {
    fs::create_dir_all(dir.join("img")).unwrap();
    fs::write(
        dir.join("index.html"),
        "<!doctype html>\n<html><head><meta charset=\"utf-8\">\
         <title>kith in a browser</title>\
         <link rel=\"stylesheet\" href=\"style.css\"></head>\n<body>\
         <h1>Served by kith</h1>\
         <p><img id=\"dot\" src=\"img/dot.svg\" alt=\"a dot\"></p>\
         <video id=\"clip\" src=\"clip.wav\" preload=\"metadata\" controls></video>\
         </body></html>\n",
    )
    .unwrap();
    fs::write(
        dir.join("style.css"),
        "body { background-color: rgb(18, 52, 86); margin: 24px }\n\
         h1 { color: rgb(255, 200, 0); font-family: sans-serif }\n",
    )
    .unwrap();
    fs::write(
        dir.join("img/dot.svg"),
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"48\" height=\"48\">\
         <circle cx=\"24\" cy=\"24\" r=\"24\" fill=\"rgb(220, 40, 40)\"/></svg>\n",
    )
    .unwrap();
    let wav = wav(RATE, SECONDS);
    fs::write(dir.join("clip.wav"), &wav).unwrap();
    wav.len() as u64
}

/// A PCM WAV file (RIFF header and 16-bit mono samples) of a quiet tone.
fn wav(rate: u32, seconds: u32) -> Vec<u8> {
    let samples = rate * seconds;
    let data_len = samples * 2;
    let mut out = Vec::with_capacity(44 + data_len as usize);
    out.extend_from_slice(b"RIFF");
    out.extend_from_slice(&(36 + data_len).to_le_bytes());
    out.extend_from_slice(b"WAVEfmt ");
    out.extend_from_slice(&16u32.to_le_bytes()); // the fmt chunk's size
    out.extend_from_slice(&1u16.to_le_bytes()); // PCM
    out.extend_from_slice(&1u16.to_le_bytes()); // one channel
    out.extend_from_slice(&rate.to_le_bytes());
    out.extend_from_slice(&(rate * 2).to_le_bytes()); // bytes per second
    out.extend_from_slice(&2u16.to_le_bytes()); // bytes per frame
    out.extend_from_slice(&16u16.to_le_bytes()); // bits per sample
    out.extend_from_slice(b"data");
    out.extend_from_slice(&data_len.to_le_bytes());
    for i in 0..samples {
        // A triangle wave of 18 samples (444 Hz at 8 kHz), well below full
        // scale.
        let phase = (i % 18) as i16;
        let level = if phase < 9 { phase } else { 18 - phase } * 200 - 900;
        out.extend_from_slice(&level.to_le_bytes());
    }
    out
}

/// The browser's visit: checks the page, seeks and plays the video, finds
/// the seek's `Range` request in the network log; returns a screenshot.
async fn visit(client: &Client, driver: &ChromeDriver, url: &str, wav_len: u64) -> Vec<u8> {
    client.goto(url).await.unwrap();

    // The page, its stylesheet and its image.
    assert_eq!(client.title().await.unwrap(), "kith in a browser");
    let heading = client.find(Locator::Css("h1")).await.unwrap();
    assert_eq!(heading.text().await.unwrap(), "Served by kith");
    let styles = script(
        client,
        "return [getComputedStyle(document.body).backgroundColor,
                 getComputedStyle(document.querySelector('h1')).color]",
    )
    .await;
    assert_eq!(
        styles,
        json!(["rgb(18, 52, 86)", "rgb(255, 200, 0)"]),
        "style.css was not applied"
    );
    poll(
        client,
        "the image to load",
        "return document.getElementById('dot').complete",
    )
    .await;
    let image = script(
        client,
        "const img = document.getElementById('dot');
         return [img.naturalWidth, img.naturalHeight]",
    )
    .await;
    assert_eq!(image, json!([48, 48]), "img/dot.svg did not load");

    // The video: its metadata (from the start of the file), then a seek to
    // the middle, which only a `Range` request can serve at once.
    poll(
        client,
        "the video's metadata",
        "const v = document.getElementById('clip');
         if (v.error) throw new Error('media error ' + v.error.code + ': ' + v.error.message);
         return v.readyState >= 1",
    )
    .await;
    let duration = script(client, "return document.getElementById('clip').duration").await;
    let duration = duration.as_f64().unwrap();
    assert!(
        (duration - f64::from(SECONDS)).abs() < 0.5,
        "the video lasts {duration} s, not {SECONDS} s"
    );
    script(
        client,
        "const v = document.getElementById('clip');
         window.seeks = 0;
         v.addEventListener('seeked', () => { window.seeks += 1; });
         v.currentTime = v.duration / 2;
         return null",
    )
    .await;
    poll(
        client,
        "the seek to the middle",
        "const v = document.getElementById('clip');
         if (v.error) throw new Error('media error ' + v.error.code + ': ' + v.error.message);
         return window.seeks > 0 && !v.seeking && v.readyState >= 2",
    )
    .await;
    let middle = duration / 2.0;
    let state = script(
        client,
        "const v = document.getElementById('clip');
         const buffered = [];
         for (let i = 0; i < v.buffered.length; i++) {
             buffered.push([v.buffered.start(i), v.buffered.end(i)]);
         }
         return { time: v.currentTime, buffered }",
    )
    .await;
    let time = state["time"].as_f64().unwrap();
    assert!(
        (time - middle).abs() < 1.0,
        "the seek ended at {time} s: {state}"
    );
    let ranges: Vec<(f64, f64)> = state["buffered"]
        .as_array()
        .unwrap()
        .iter()
        .map(|range| (range[0].as_f64().unwrap(), range[1].as_f64().unwrap()))
        .collect();
    assert!(
        ranges
            .iter()
            .any(|&(start, end)| start > duration / 4.0 && start <= time && time <= end),
        "no buffered range starts near the middle and holds {time} s: {ranges:?}"
    );

    // It plays from there: the data past the middle decodes.
    let played = script(
        client,
        "return document.getElementById('clip').play().then(() => 'playing', e => String(e))",
    )
    .await;
    assert_eq!(played, json!("playing"));
    poll(
        client,
        "the video to play half a second past the middle",
        &format!(
            "const v = document.getElementById('clip');
             if (v.error) throw new Error('media error ' + v.error.code + ': ' + v.error.message);
             return v.currentTime > {}",
            middle + 0.5
        ),
    )
    .await;
    let played = script(
        client,
        "const v = document.getElementById('clip');
         v.pause();
         const played = [];
         for (let i = 0; i < v.played.length; i++) {
             played.push([v.played.start(i), v.played.end(i)]);
         }
         return played",
    )
    .await;
    assert!(
        played.as_array().unwrap().iter().any(|range| {
            let start = range[0].as_f64().unwrap();
            (start - middle).abs() < 1.0 && range[1].as_f64().unwrap() > middle + 0.5
        }),
        "nothing was played from the middle: {played}"
    );

    // What went over the wire, as Chromium logged it: the seek asked the
    // gateway for a range that starts near the middle of the file, and the
    // gateway answered 206 with that range. Only the network's own events
    // count: Chromium's HTTP cache answers the page with ranges of its own
    // making, partly from what it holds.
    let session = client.session_id().await.unwrap().unwrap();
    let mut requests = BTreeMap::new();
    let mut range = None;
    let deadline = Instant::now() + BROWSER_LIMIT;
    while range.is_none() {
        network_log(driver, &session, &mut requests);
        range = requests.values().find_map(|request| {
            let (start, size) = request.answered_range()?;
            let near = start.abs_diff(wav_len / 2) < 1 << 20;
            let asked = request
                .range
                .as_deref()?
                .starts_with(&format!("bytes={start}-"));
            (request.url.ends_with("/clip.wav") && size == wav_len && near && asked)
                .then(|| request.clone())
        });
        assert!(
            Instant::now() < deadline || range.is_some(),
            "no 206 answer to a Range request near the middle of clip.wav ({wav_len} bytes) \
             in Chromium's network log: {:#?}",
            requests
                .values()
                .filter(|request| request.url.ends_with("/clip.wav"))
                .collect::<Vec<_>>()
        );
        if range.is_none() {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    for request in requests.values().filter(|r| r.url.ends_with("/clip.wav")) {
        eprintln!(
            "clip.wav on the wire: Range {} -> {} {}",
            request.range.as_deref().unwrap_or("(none)"),
            request.status.map_or_else(
                || "(no answer logged yet)".to_owned(),
                |status| status.to_string()
            ),
            request.content_range.as_deref().unwrap_or("")
        );
    }

    client.screenshot().await.unwrap()
}

/// One request of the page, as Chromium's network log tells it: the URL
/// the page asked for, and what went over the wire for it.
#[derive(Clone, Debug, Default)]
struct Request {
    url: String,
    /// The `Range` header sent to the server.
    range: Option<String>,
    /// The server's status.
    status: Option<u64>,
    /// The server's `Content-Range` header.
    content_range: Option<String>,
}

impl Request {
    /// For a `206` from the server: where its range starts and the whole
    /// file's size.
    fn answered_range(&self) -> Option<(u64, u64)> {
        if self.status != Some(206) {
            return None;
        }
        let (range, size) = self
            .content_range
            .as_deref()?
            .strip_prefix("bytes ")?
            .split_once('/')?;
        let (start, _) = range.split_once('-')?;
        Some((start.parse().ok()?, size.parse().ok()?))
    }
}

/// A header by name, whatever its case, from a log event's headers.
fn header(headers: &Value, name: &str) -> Option<String> {
    headers.as_object()?.iter().find_map(|(key, value)| {
        key.eq_ignore_ascii_case(name)
            .then(|| value.as_str().map(str::to_owned))
            .flatten()
    })
}

/// Adds to `requests` (by request id) the network events Chromium
/// logged since the last call. Through chromedriver's own log endpoint,
/// which fantoccini has no command for (a command of our own would
/// need its `url` and `http` crates as dependencies here too).
///
/// The `…ExtraInfo` events carry the headers as they went over the
/// wire; the others, what the page saw, which Chromium's HTTP cache may
/// have made up from what it holds (a `206` for a range of which only
/// the tail was asked from the server), so only the URL is taken from
/// them.
fn network_log(driver: &ChromeDriver, session: &str, requests: &mut BTreeMap<String, Request>) {
    let mut answer = ureq::post(format!("{}/session/{session}/se/log", driver.url))
        .send_json(json!({ "type": "performance" }))
        .unwrap();
    let entries: Value = answer.body_mut().read_json().unwrap();
    for entry in entries["value"].as_array().into_iter().flatten() {
        let Some(Ok(message)) = entry["message"].as_str().map(serde_json::from_str::<Value>) else {
            continue;
        };
        let message = &message["message"];
        let params = &message["params"];
        let Some(id) = params["requestId"].as_str() else {
            continue;
        };
        let request = requests.entry(id.to_owned()).or_default();
        match message["method"].as_str().unwrap_or_default() {
            "Network.requestWillBeSent" => {
                request.url = params["request"]["url"].as_str().unwrap_or("").to_owned();
            }
            "Network.requestWillBeSentExtraInfo" => {
                request.range = header(&params["headers"], "range");
            }
            "Network.responseReceivedExtraInfo" => {
                request.status = params["statusCode"].as_u64();
                request.content_range = header(&params["headers"], "content-range");
            }
            _ => {}
        }
    }
}
