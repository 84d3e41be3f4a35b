//! The web app (`kith dashboard`'s address) in a real browser: headless
//! Chromium over WebDriver (`common/browser.rs`) against three real
//! `kith up` processes on 127.0.0.1, A, B and C.
//!
//! - **Files**, in A's app: a file chosen in the file picker is stored
//!   2-of-3; the page shows its capability as text and as a QR code (an
//!   image that loads); `kith get CAP -o` on C gives the same bytes back.
//!   A file dropped onto the page is stored too. A folder chosen in the
//!   folder picker is stored as a folder, and `kith get` on C writes the
//!   same tree. The first file's capability typed into the Download field
//!   comes back from the network into the browser's downloads, byte for
//!   byte.
//! - **Friends**, in A's app: B added to the address book as "bob" (the
//!   file `kith friend` uses: A's command line then knows "bob"); a
//!   message and a file sent to bob from the page.
//! - **Inbox**, in B's app (the same tab, moved to B's address): the
//!   message and the file are there, the file downloads, and a message
//!   sent afterwards shows up without a reload.
//! - **Names**, in B's app: the capability published under the label
//!   "web" shows in the names table, and C resolves the name to it; the
//!   capability mirrored from the page shows as a complete mirror.
//! - At a phone's width, Home fits without sideways scrolling.
//!
//! Screenshots of each page go to `target/test-artifacts/browser/`
//! (`app-home.png`, `app-files.png`, `app-friends.png`, `app-inbox.png`,
//! `app-names.png`, `app-network.png`, `app-narrow.png`). Without Chromium
//! and chromedriver the test is not run, with a message; under `CI=true`
//! it fails instead.

#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "common/browser.rs"]
mod browser;
mod common;

use std::fs;
use std::time::Instant;

use browser::*;
use common::*;
use fantoccini::{Client, Locator};
use serde_json::{Value, json};

/// The stored file's size: several stripes' worth would only slow the test;
/// this is enough for the upload's progress events.
const FILE_LEN: usize = 300 * 1024;

#[test]
fn the_web_app_stores_sends_receives_and_publishes_in_chromium() {
    if !browser::installed() {
        return;
    }
    let started = Instant::now();
    let temp = tempfile::tempdir().unwrap();
    let nodes = start_network(temp.path(), 3, 2, |_| Vec::new());
    let (a, b, c) = (&nodes[0], &nodes[1], &nodes[2]);
    let app_a = dashboard(a);
    let app_b = dashboard(b);
    let upload = temp.path().join("holiday notes.bin");
    random_file(&upload, FILE_LEN);
    let original = fs::read(&upload).unwrap();
    let sent = temp.path().join("for-bob.txt");
    fs::write(&sent, "a file sent from the web app\n".repeat(500)).unwrap();
    let downloads = temp.path().join("downloads");
    fs::create_dir_all(&downloads).unwrap();
    eprintln!("three nodes up ({:.1?} so far)", started.elapsed());

    let mut driver = ChromeDriver::start(&temp.path().join("chromedriver.log"));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let client = runtime.block_on(driver.session_saving_to(1100, 900, &downloads));

    // Home: A's state, live.
    runtime.block_on(async {
        client.goto(&app_a).await.unwrap();
        wait_live(&client).await;
        poll(
            &client,
            "Home to show two peers",
            "return document.getElementById('peers').textContent === '2'",
        )
        .await;
        let url = script(&client, "return location.href").await;
        assert!(
            !url.as_str().unwrap().contains("token"),
            "the token stays in the address bar: {url}"
        );
    });

    // (a) Files: the file picker, 2-of-3 shares, the capability and its
    // QR code.
    let timer = Instant::now();
    let cap = runtime.block_on(async {
        open_tab(&client, "files").await;
        type_into(&client, "#put-shares", "2/3").await;
        client
            .find(Locator::Css("#file-input"))
            .await
            .unwrap()
            .send_keys(upload.to_str().unwrap())
            .await
            .unwrap();
        poll(
            &client,
            "the upload's capability",
            "const failed = document.querySelector('#uploads .upload.failed');
             if (failed) throw new Error(failed.textContent);
             return document.querySelector('#uploads .result code.cap') !== null",
        )
        .await;
        let cap = script(
            &client,
            "return document.querySelector('#uploads .result code.cap').textContent",
        )
        .await;
        let cap = cap.as_str().unwrap().to_owned();
        assert!(cap.starts_with("kith:"), "{cap}");
        let title = script(
            &client,
            "return document.querySelector('#uploads .result .result-title').textContent",
        )
        .await;
        assert!(
            title.as_str().unwrap().contains("holiday notes.bin"),
            "{title}"
        );
        // The QR code: an image the node drew, loaded through a blob: URL.
        poll(
            &client,
            "the QR code to load",
            "const img = document.querySelector('#uploads .result img.qr');
             if (img.classList.contains('failed')) throw new Error(img.alt);
             return img.src.startsWith('blob:') && img.complete && img.naturalWidth > 0",
        )
        .await;
        let size = script(
            &client,
            "const img = document.querySelector('#uploads .result img.qr');
             return [img.naturalWidth, img.naturalHeight]",
        )
        .await;
        assert!(size[0].as_u64().unwrap() >= 256, "{size}");
        assert_eq!(size[0], size[1], "a QR code is square: {size}");
        cap
    });
    eprintln!("stored from the page in {:.1?}: {cap}", timer.elapsed());

    // C fetches it with the command line.
    let out = temp.path().join("out");
    let got = kith(&c.dir, &["get", &cap, "-o", out.to_str().unwrap()]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert!(fs::read(&out).unwrap() == original, "C got other bytes");

    // A file dropped onto the page (a drop event carrying a file made in
    // the page, as a drag from the desktop would): C reads it.
    let dropped = "dropped onto the page\n";
    let dropped_cap = runtime.block_on(async {
        script(
            &client,
            &format!(
                "const data = new DataTransfer();
                 data.items.add(new File([{}], 'dropped.txt', {{ type: 'text/plain' }}));
                 const zone = document.getElementById('drop');
                 for (const type of ['dragenter', 'dragover', 'drop']) {{
                     zone.dispatchEvent(new DragEvent(type, {{ dataTransfer: data, bubbles: true, cancelable: true }}));
                 }}
                 return null",
                json!(dropped)
            ),
        )
        .await;
        poll(
            &client,
            "the dropped file's capability",
            "const failed = document.querySelector('#uploads .upload.failed');
             if (failed) throw new Error(failed.textContent);
             const title = document.querySelector('#uploads .result .result-title strong');
             return title !== null && title.textContent === 'dropped.txt'",
        )
        .await;
        let cap = script(
            &client,
            "return document.querySelector('#uploads .result code.cap').textContent",
        )
        .await;
        cap.as_str().unwrap().to_owned()
    });
    let got = kith(&c.dir, &["get", &dropped_cap]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    assert_eq!(text(&got.stdout), dropped);

    // A folder, from the folder picker: C gets the same tree back.
    let folder = temp.path().join("album");
    fs::create_dir_all(folder.join("day 2")).unwrap();
    fs::write(folder.join("readme.txt"), "an album put from the web app\n").unwrap();
    random_file(&folder.join("day 2/photo.bin"), 40 * 1024);
    let folder_cap = runtime.block_on(async {
        client
            .find(Locator::Css("#folder-input"))
            .await
            .unwrap()
            .send_keys(folder.to_str().unwrap())
            .await
            .unwrap();
        poll(
            &client,
            "the folder's capability",
            "const failed = document.querySelector('#uploads .upload.failed');
             if (failed) throw new Error(failed.textContent);
             const title = document.querySelector('#uploads .result .result-title strong');
             return title !== null && title.textContent === 'album/'",
        )
        .await;
        let cap = script(
            &client,
            "return document.querySelector('#uploads .result code.cap').textContent",
        )
        .await;
        cap.as_str().unwrap().to_owned()
    });
    let tree = temp.path().join("album-from-c");
    let got = kith(&c.dir, &["get", &folder_cap, "-o", tree.to_str().unwrap()]);
    assert!(got.status.success(), "{}", text(&got.stderr));
    for file in ["readme.txt", "day 2/photo.bin"] {
        assert!(
            fs::read(tree.join(file)).unwrap() == fs::read(folder.join(file)).unwrap(),
            "C got another {file}"
        );
    }

    // Download by capability: back into the browser, byte for byte.
    runtime.block_on(async {
        type_into(&client, "#get-cap", &cap).await;
        click(&client, "#get-button").await;
        poll(
            &client,
            "the download",
            "const state = document.getElementById('get-state');
             if (state.className === 'bad') throw new Error(state.textContent);
             return state.dataset.size !== undefined",
        )
        .await;
        let saved = saved_file(&downloads, "holiday notes.bin", FILE_LEN).await;
        assert!(saved == original, "the browser saved other bytes");
        script(&client, "window.scrollTo(0, 0); return null").await;
        keep_screenshot("app-files.png", &client.screenshot().await.unwrap());
    });

    // (b) Friends: bob (B) added on the page; a message and a file to bob.
    let message = "hello from A's web app";
    runtime.block_on(async {
        open_tab(&client, "friends").await;
        type_into(&client, "#friend-name", "bob").await;
        type_into(&client, "#friend-peer", &b.peer_id).await;
        click(&client, "#friend-add").await;
        poll(
            &client,
            "bob in the friends list",
            "return document.querySelector(\".friend[data-name='bob']\") !== null",
        )
        .await;
        type_into(&client, ".friend[data-name='bob'] textarea", message).await;
        click(&client, ".friend[data-name='bob'] .send-message").await;
        sent_to_bob(&client, "delivered the message").await;
        client
            .find(Locator::Css(".friend[data-name='bob'] input.send-file"))
            .await
            .unwrap()
            .send_keys(sent.to_str().unwrap())
            .await
            .unwrap();
        sent_to_bob(&client, "delivered for-bob.txt").await;
        keep_screenshot("app-friends.png", &client.screenshot().await.unwrap());
    });
    // The page wrote the address book the command line reads.
    let listed = kith(&a.dir, &["friend", "ls"]);
    assert!(listed.status.success(), "{}", text(&listed.stderr));
    assert_eq!(text(&listed.stdout).trim(), format!("bob {}", b.peer_id));

    // (c) B's inbox: the message and the file; the file downloads; a
    // message sent now shows without a reload.
    let later = "and one while the inbox is open";
    runtime.block_on(async {
        client.goto(&app_b).await.unwrap();
        wait_live(&client).await;
        open_tab(&client, "inbox").await;
        poll(
            &client,
            "the message in B's inbox",
            &format!(
                "return [...document.querySelectorAll('#inbox-list .message.text .text')]
                     .some((text) => text.textContent === {})",
                json!(message)
            ),
        )
        .await;
        poll(
            &client,
            "the file in B's inbox",
            "return [...document.querySelectorAll('#inbox-list .message.file')]
                 .some((item) => item.querySelector('.file-name').textContent === 'for-bob.txt'
                     && item.querySelector('button') !== null)",
        )
        .await;
        let from = script(
            &client,
            "return document.querySelector('#inbox-list .message .meta strong').title",
        )
        .await;
        assert_eq!(from, json!(a.peer_id), "the sender");
        click(&client, "#inbox-list .message.file button").await;
        let saved = saved_file(
            &downloads,
            "for-bob.txt",
            fs::metadata(&sent).unwrap().len() as usize,
        )
        .await;
        assert!(
            saved == fs::read(&sent).unwrap(),
            "the inbox gave other bytes"
        );

        let said = kith(&a.dir, &["msg", "bob", later]);
        assert!(said.status.success(), "{}", text(&said.stderr));
        poll(
            &client,
            "the later message to show without a reload",
            &format!(
                "return [...document.querySelectorAll('#inbox-list .message.text .text')]
                     .some((text) => text.textContent === {})",
                json!(later)
            ),
        )
        .await;
        keep_screenshot("app-inbox.png", &client.screenshot().await.unwrap());
    });

    // (d) Names, in B's app: publish the capability under "web"; mirror it.
    let name = runtime.block_on(async {
        open_tab(&client, "names").await;
        type_into(&client, "#publish-cap", &cap).await;
        type_into(&client, "#publish-label", "web").await;
        click(&client, "#publish-button").await;
        poll(
            &client,
            "the name to be published",
            "const state = document.getElementById('publish-state');
             if (state.className.includes('bad')) throw new Error(state.textContent);
             return state.dataset.name !== undefined",
        )
        .await;
        let name = script(
            &client,
            "return document.getElementById('publish-state').dataset.name",
        )
        .await;
        let name = name.as_str().unwrap().to_owned();
        poll(
            &client,
            "the name in the names table",
            &format!(
                "return [...document.querySelectorAll('#names tbody tr')]
                     .some((row) => row.cells[0].textContent === 'web'
                         && row.cells[1].textContent === {})",
                json!(name)
            ),
        )
        .await;
        type_into(&client, "#mirror-target", &cap).await;
        click(&client, "#mirror-button").await;
        poll(
            &client,
            "the mirror in the mirrors table",
            &format!(
                "const state = document.getElementById('mirror-state');
                 if (state.className.includes('bad')) throw new Error(state.textContent);
                 return [...document.querySelectorAll('#mirrors tbody tr')]
                     .some((row) => row.cells[0].textContent === {}
                         && row.cells[4].textContent === 'complete')",
                json!(cap)
            ),
        )
        .await;
        keep_screenshot("app-names.png", &client.screenshot().await.unwrap());
        name
    });
    let resolved = kith(&c.dir, &["name", "resolve", &name, "--fresh"]);
    assert!(resolved.status.success(), "{}", text(&resolved.stderr));
    assert_eq!(text(&resolved.stdout).trim(), cap);

    // Network, then Home at a phone's width.
    runtime.block_on(async {
        open_tab(&client, "network").await;
        poll(
            &client,
            "the peers table",
            "return document.querySelectorAll('#peer-list tbody tr').length === 2",
        )
        .await;
        keep_screenshot("app-network.png", &client.screenshot().await.unwrap());
        // Home, with a few samples in its charts.
        open_tab(&client, "home").await;
        poll(
            &client,
            "the charts to have samples",
            "return document.getElementById('served-rate').textContent.endsWith('/s')",
        )
        .await;
        keep_screenshot("app-home.png", &client.screenshot().await.unwrap());
        client.set_window_size(390, 844).await.unwrap();
        open_tab(&client, "home").await;
        poll(
            &client,
            "Home to fit the narrow window",
            "return document.documentElement.scrollWidth <= window.innerWidth",
        )
        .await;
        keep_screenshot("app-narrow.png", &client.screenshot().await.unwrap());
        driver.close(client).await;
    });
    eprintln!("the test took {:.1?}", started.elapsed());
}

/// The address `kith dashboard` prints for `node` (its token after `#`).
fn dashboard(node: &Daemon) -> String {
    let printed = kith(&node.dir, &["dashboard"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    text(&printed.stdout).trim().to_owned()
}

/// Waits until the app has reached its node.
async fn wait_live(client: &Client) {
    poll(
        client,
        "the app to reach its node",
        "const problem = document.getElementById('problem');
         if (!problem.hidden && problem.textContent) throw new Error(problem.textContent);
         return document.getElementById('state').textContent === 'live'",
    )
    .await;
}

/// Opens a tab by clicking its link, and waits until its page shows alone.
async fn open_tab(client: &Client, tab: &str) {
    click(client, &format!("#tabs a[data-tab='{tab}']")).await;
    poll(
        client,
        &format!("the {tab} page"),
        &format!(
            "return [...document.querySelectorAll('.page')]
                 .every((page) => page.hidden === (page.dataset.page !== {}))
                 && location.hash === {}",
            json!(tab),
            json!(format!("#{tab}"))
        ),
    )
    .await;
}

async fn click(client: &Client, css: &str) {
    client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css}: {error}"))
        .click()
        .await
        .unwrap_or_else(|error| panic!("cannot click {css}: {error}"));
}

/// Replaces the text of the field `css` finds with `value`, as typed.
async fn type_into(client: &Client, css: &str, value: &str) {
    let field = client
        .find(Locator::Css(css))
        .await
        .unwrap_or_else(|error| panic!("no {css}: {error}"));
    field.clear().await.unwrap();
    field.send_keys(value).await.unwrap();
    let now = script(
        client,
        &format!("return document.querySelector({}).value", json!(css)),
    )
    .await;
    assert_eq!(now, Value::String(value.to_owned()), "{css}");
}

/// Waits until bob's card says something was sent (the sentence starting
/// with `start`), or fails with the sentence it shows instead.
async fn sent_to_bob(client: &Client, start: &str) {
    poll(
        client,
        start,
        &format!(
            "const state = document.querySelector(\".friend[data-name='bob'] .send-state\");
             if (state.className.includes('bad')) throw new Error(state.textContent);
             return state.textContent.startsWith({})",
            json!(start)
        ),
    )
    .await;
}

/// Without a browser: every file of the web app is served without the
/// token but with the page's policy, and the routes it added need the
/// token and answer as the app expects.
#[test]
fn the_web_apps_files_and_routes() {
    let temp = tempfile::tempdir().unwrap();
    let node = Daemon::start(&temp.path().join("a"), &[]);
    let addr = fs::read_to_string(node.dir.join("api.addr")).unwrap();
    let token = fs::read_to_string(node.dir.join("api.token")).unwrap();
    let base = format!("http://{}", addr.trim());
    let bearer = format!("Bearer {}", token.trim());
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();

    // The page names its scripts; each is served, as a script, with the
    // page's policy, and carries no data.
    let page = agent
        .get(format!("{base}/dashboard"))
        .call()
        .unwrap()
        .body_mut()
        .read_to_string()
        .unwrap();
    let scripts: Vec<&str> = page
        .match_indices("<script src=\"")
        .map(|(at, found)| page[at + found.len()..].split('"').next().unwrap())
        .collect();
    assert!(scripts.len() >= 5, "{scripts:?}");
    for path in scripts.iter().copied().chain(["/dashboard/favicon.svg"]) {
        let mut answer = agent.get(format!("{base}{path}")).call().unwrap();
        assert_eq!(answer.status().as_u16(), 200, "{path}");
        let header = |name: &str| {
            answer
                .headers()
                .get(name)
                .map(|value| value.to_str().unwrap().to_owned())
                .unwrap_or_default()
        };
        let kind = if path.ends_with(".js") {
            "text/javascript"
        } else {
            "image/svg+xml"
        };
        assert!(header("content-type").starts_with(kind), "{path}");
        let policy = header("content-security-policy");
        assert!(
            policy.contains("script-src 'self'") && policy.contains("frame-ancestors 'none'"),
            "{path}: {policy}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff", "{path}");
        let body = answer.body_mut().read_to_string().unwrap();
        assert!(!body.contains(token.trim()), "{path} carries the token");
        assert!(!body.contains(&node.peer_id), "{path} carries node data");
        assert!(
            !body.contains("http://") || path.ends_with(".svg"),
            "{path} loads something from elsewhere"
        );
    }

    // The QR code: an SVG, with the token only.
    let qr = format!("{base}/v1/qr?text=kith%3Aabc");
    assert_eq!(agent.get(&qr).call().unwrap().status().as_u16(), 401);
    let mut answer = agent
        .get(&qr)
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(answer.status().as_u16(), 200);
    assert_eq!(answer.headers()["content-type"], "image/svg+xml");
    let svg = answer.body_mut().read_to_string().unwrap();
    assert!(svg.contains("<svg") && svg.contains("<path"), "{svg}");
    let empty = agent
        .get(format!("{base}/v1/qr?text="))
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(empty.status().as_u16(), 400);

    // The address book: the same file `kith friend` edits.
    let post = |path: &str, body: Value| {
        let mut answer = agent
            .post(format!("{base}{path}"))
            .header("Authorization", &bearer)
            .send_json(body)
            .unwrap();
        let status = answer.status().as_u16();
        (status, answer.body_mut().read_json::<Value>().unwrap())
    };
    let init = kith(&temp.path().join("other"), &["init"]);
    assert!(init.status.success(), "{}", text(&init.stderr));
    let other = text(&init.stdout).trim().to_owned();
    let other = other.as_str();
    let (status, added) = post("/v1/friends", json!({ "name": "carol", "peer_id": other }));
    assert_eq!(status, 200, "{added}");
    assert_eq!(
        added,
        json!({ "name": "carol", "peer_id": other, "added": true })
    );
    let listed = kith(&node.dir, &["friend", "ls"]);
    assert_eq!(text(&listed.stdout).trim(), format!("carol {other}"));
    let (status, refused) = post(
        "/v1/friends",
        json!({ "name": "me", "peer_id": node.peer_id }),
    );
    assert_eq!(status, 400, "{refused}");
    let (status, refused) = post("/v1/friends", json!({ "name": "x", "peer_id": "nope" }));
    assert_eq!(status, 400, "{refused}");
    assert!(
        refused["message"]
            .as_str()
            .unwrap()
            .contains("not a peer id"),
        "{refused}"
    );
    let (status, removed) = post("/v1/friends/rm", json!({ "name": "carol" }));
    assert_eq!(status, 200, "{removed}");
    let (status, _) = post("/v1/friends/rm", json!({ "name": "carol" }));
    assert_eq!(status, 404);
    let mut book = agent
        .get(format!("{base}/v1/friends"))
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    let book: Value = book.body_mut().read_json().unwrap();
    assert!(
        book["friends"]
            .as_array()
            .unwrap()
            .iter()
            .all(|friend| friend["name"] != "carol"),
        "{book}"
    );

    // No such received file.
    let missing = agent
        .get(format!("{base}/v1/inbox/file?arrival=7"))
        .header("Authorization", &bearer)
        .call()
        .unwrap();
    assert_eq!(missing.status().as_u16(), 404);
}
