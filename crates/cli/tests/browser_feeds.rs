//! Feeds in a real browser, with real `kith up` processes on 127.0.0.1 and
//! headless Chromium over WebDriver (`common/browser.rs`):
//!
//! - a post with a PNG attached, made on node A and followed by B, shows
//!   on B's gateway page `/f/<A>/` with its image loaded while A is
//!   stopped (B keeps a copy of a followed feed's attachments);
//! - in B's dashboard (the address `kith dashboard` prints), a post typed
//!   into the post box and sent with the Post button reaches C, which
//!   follows B, within 10 s and shows in the dashboard's timeline; the
//!   dashboard shows A's image through B's gateway, and a reply made with
//!   a post's Reply button shows under that post.
//!
//! Screenshots are kept in `target/test-artifacts/browser/` (`feed.png`,
//! `dashboard-feed.png`). Without Chromium and chromedriver the test is
//! not run, with a message; under `CI=true` it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::fs;
use std::time::{Duration, Instant};

use browser::*;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// The attached image's size in pixels.
const WIDTH: u32 = 120;
const HEIGHT: u32 = 80;

/// How soon a post made in the dashboard must show on a follower.
const DELIVERY_LIMIT: Duration = Duration::from_secs(10);

#[test]
fn a_feed_with_an_image_in_chromium_and_a_post_from_the_dashboard() {
    if !browser::installed() {
        return;
    }
    let started = Instant::now();
    let temp = tempfile::tempdir().unwrap();

    // Five nodes: A's attachment is stored 3-of-5 over all of them.
    let mut nodes = start_network(temp.path(), 5, 4, |_| Vec::new());
    let author = nodes[0].peer_id.clone();
    let photo = temp.path().join("photo.png");
    fs::write(&photo, png(WIDTH, HEIGHT)).unwrap();
    let look = post(&nodes[0], &["look", "--attach", photo.to_str().unwrap()]);

    // B follows A, C follows B.
    follow(&nodes[1], &author);
    follow(&nodes[2], &nodes[1].peer_id);
    wait_for("B to show A's post", Duration::from_secs(30), || {
        feed(&nodes[1], Some(&author))
            .iter()
            .any(|item| item["id"] == look.as_str() && item["text"] == "look")
    });
    // B's copy of the attachment, which serves it while A is away.
    let photo_len = fs::metadata(&photo).unwrap().len();
    wait_for("B to copy A's attachment", Duration::from_secs(60), || {
        api_get(&nodes[1], "/v1/feed")["feeds"]
            .as_array()
            .unwrap()
            .iter()
            .any(|info| {
                info["author"] == author.as_str()
                    && info["attachment_bytes"].as_u64() >= Some(photo_len)
            })
    });
    nodes.remove(0).terminate();
    let (b, c) = (&nodes[0], &nodes[1]);
    let gateway = text(&kith(&b.dir, &["gateway"]).stdout).trim().to_owned();
    let dashboard = kith(&b.dir, &["dashboard"]);
    assert!(dashboard.status.success(), "{}", text(&dashboard.stderr));
    let dashboard = text(&dashboard.stdout).trim().to_owned();
    eprintln!(
        "A ({author}) posted and stopped; B's gateway {gateway} ({:.1?} so far)",
        started.elapsed()
    );

    let mut driver = ChromeDriver::start(&temp.path().join("chromedriver.log"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(driver.session(1000, 1000));

    // (a) A's feed on B's gateway, A stopped: the text and the image.
    let screenshot = runtime.block_on(async {
        client.goto(&format!("{gateway}f/{author}/")).await.unwrap();
        let body = client.find(Locator::Css("body")).await.unwrap();
        assert!(body.text().await.unwrap().contains("look"));
        image_loaded(&client, "img").await;
        client.screenshot().await.unwrap()
    });
    keep_screenshot("feed.png", &screenshot);

    // (b) B's dashboard: A's post with its image, then a post typed into
    // the post box and sent with the Post button.
    let said = "typed into the dashboard of B";
    let clicked = runtime.block_on(async {
        client.goto(&dashboard).await.unwrap();
        poll(
            &client,
            "the dashboard's timeline",
            "return document.getElementById('state').textContent === 'live'
                 && document.querySelector('#timeline .post') !== null",
        )
        .await;
        let url = script(&client, "return location.href").await;
        assert!(
            !url.as_str().unwrap().contains("token"),
            "the token stays in the address bar: {url}"
        );
        image_loaded(&client, &format!("article[data-id='{look}'] img")).await;
        let box_ = client.find(Locator::Id("post-text")).await.unwrap();
        box_.send_keys(said).await.unwrap();
        client
            .find(Locator::Id("post-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let clicked = Instant::now();
        posted(&client).await;
        clicked
    });
    // C follows B: the post reaches it within 10 s of the click.
    wait_for(
        "C to show the post made in B's dashboard",
        DELIVERY_LIMIT,
        || feed(c, None).iter().any(|item| item["text"] == said),
    );
    let delivered = clicked.elapsed();
    let own = feed(b, None);
    let made = own.iter().find(|item| item["text"] == said).unwrap();
    assert_eq!(made["author"], b.peer_id.as_str());
    assert!(made["reply_to"].is_null(), "{made}");

    // The dashboard's timeline shows it; a reply made with the Reply
    // button of A's post shows under that post.
    let answer = "a reply from the dashboard";
    let screenshot = runtime.block_on(async {
        poll(
            &client,
            "the dashboard to show the post",
            &format!(
                "return [...document.querySelectorAll('#timeline > .post > .text')]
                     .some((text) => text.textContent === {})",
                json!(said)
            ),
        )
        .await;
        client
            .find(Locator::Css(&format!("article[data-id='{look}'] > button")))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        let box_ = client.find(Locator::Id("post-text")).await.unwrap();
        box_.send_keys(answer).await.unwrap();
        client
            .find(Locator::Id("post-button"))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
        posted(&client).await;
        poll(
            &client,
            "the reply under A's post",
            &format!(
                "return [...document.querySelectorAll(\"article[data-id='{look}'] > .replies > .post > .text\")]
                     .some((text) => text.textContent === {})",
                json!(answer)
            ),
        )
        .await;
        script(
            &client,
            "document.getElementById('feed').scrollIntoView(); return null",
        )
        .await;
        let screenshot = client.screenshot().await.unwrap();
        driver.close(client).await;
        screenshot
    });
    keep_screenshot("dashboard-feed.png", &screenshot);
    let reply = feed(b, None)
        .into_iter()
        .find(|item| item["text"] == answer)
        .unwrap();
    assert_eq!(reply["reply_to"], look.as_str());
    eprintln!(
        "the dashboard's post reached C {delivered:.1?} after the click; the test took {:.1?}",
        started.elapsed()
    );
}

fn post(node: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["post"];
    all.extend_from_slice(args);
    let posted = kith(&node.dir, &all);
    assert!(posted.status.success(), "{}", text(&posted.stderr));
    text(&posted.stdout).trim().to_owned()
}

fn follow(node: &Daemon, who: &str) {
    let followed = kith(&node.dir, &["follow", who]);
    assert!(followed.status.success(), "{}", text(&followed.stderr));
}

/// `kith feed [WHO] --json` on `node`: the posts, newest first.
fn feed(node: &Daemon, who: Option<&str>) -> Vec<Value> {
    let mut args = vec!["feed"];
    args.extend(who);
    args.push("--json");
    let output = kith(&node.dir, &args);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout)
        .lines()
        .map(|line| serde_json::from_str(line).unwrap())
        .collect()
}

/// A `GET` of the node's API, with its token.
fn api_get(node: &Daemon, path: &str) -> Value {
    let addr = fs::read_to_string(node.dir.join("api.addr")).unwrap();
    let token = fs::read_to_string(node.dir.join("api.token")).unwrap();
    ureq::get(format!("http://{}{path}", addr.trim()))
        .header("Authorization", format!("Bearer {}", token.trim()))
        .call()
        .unwrap()
        .body_mut()
        .read_json()
        .unwrap()
}

/// Waits until the image `selector` finds has loaded, and checks that it
/// is the attached PNG.
async fn image_loaded(client: &Client, selector: &str) {
    let find = format!("const img = document.querySelector({});", json!(selector));
    poll(
        client,
        &format!("{selector} to load"),
        &format!("{find} return img !== null && img.complete"),
    )
    .await;
    let size = script(
        client,
        &format!("{find} return [img.naturalWidth, img.naturalHeight]"),
    )
    .await;
    assert_eq!(size, json!([WIDTH, HEIGHT]), "{selector} did not load");
}

/// Waits until the dashboard's post box says the post went out (or fails
/// with the sentence it shows instead).
async fn posted(client: &Client) {
    poll(
        client,
        "the post box to say the post went out",
        "const state = document.getElementById('post-state');
         if (state.className === 'bad') throw new Error(state.textContent);
         return state.textContent.startsWith('posted ')",
    )
    .await;
}

/// An RGB PNG of `width` × `height` pixels (a colour gradient), deflated
/// with stored blocks: valid, and made here without a library.
fn png(width: u32, height: u32) -> Vec<u8> {
    let mut pixels = Vec::new();
    for y in 0..height {
        pixels.push(0); // the row's filter: none
        for x in 0..width {
            pixels.extend([(x * 255 / width) as u8, (y * 255 / height) as u8, 160]);
        }
    }
    // zlib: a header, stored blocks of at most 65,535 bytes, Adler-32.
    let mut zlib = vec![0x78, 0x01];
    let blocks: Vec<&[u8]> = pixels.chunks(65_535).collect();
    for (i, block) in blocks.iter().enumerate() {
        zlib.push(u8::from(i + 1 == blocks.len()));
        let len = block.len() as u16;
        zlib.extend(len.to_le_bytes());
        zlib.extend((!len).to_le_bytes());
        zlib.extend_from_slice(block);
    }
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &pixels {
        a = (a + u32::from(byte)) % 65_521;
        b = (b + a) % 65_521;
    }
    zlib.extend(((b << 16) | a).to_be_bytes());

    let mut header = Vec::new();
    header.extend(width.to_be_bytes());
    header.extend(height.to_be_bytes());
    header.extend([8, 2, 0, 0, 0]); // 8 bits, RGB, deflate, no filter, no interlace
    let mut out = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(b"IHDR", header), (b"IDAT", zlib), (b"IEND", Vec::new())] {
        out.extend((data.len() as u32).to_be_bytes());
        let start = out.len();
        out.extend_from_slice(kind);
        out.extend_from_slice(&data);
        let crc = crc32(&out[start..]);
        out.extend(crc.to_be_bytes());
    }
    out
}

/// CRC-32 (IEEE), as PNG chunks carry it.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &byte in bytes {
        crc ^= u32::from(byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[test]
fn the_hand_made_png_is_valid() {
    // The known CRC of "IEND" with no data, and the layout of the header.
    assert_eq!(crc32(b"IEND"), 0xAE42_6082);
    let image = png(3, 2);
    assert!(image.starts_with(b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR"));
    assert!(image.ends_with(b"IEND\xae\x42\x60\x82"));
}
