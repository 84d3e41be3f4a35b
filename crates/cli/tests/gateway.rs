//! The HTTP gateway, end to end with real `kith up` processes on 127.0.0.1:
//! a folder put on one node is read through another node's gateway, as a
//! browser would: redirects, `index.html`, listings, media types, `Range`
//! (first, middle, last and suffix bytes; a range past the end), `HEAD`,
//! `ETag` and `If-None-Match`, missing paths and paths that try to climb
//! out of the folder.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;

use common::*;

/// An HTTP answer: status, headers, body.
struct Answer {
    status: u16,
    headers: ureq::http::HeaderMap,
    body: Vec<u8>,
}

impl Answer {
    fn header(&self, name: &str) -> &str {
        self.headers
            .get(name)
            .map(|value| value.to_str().unwrap())
            .unwrap_or("")
    }
}

fn agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into()
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = agent().run(builder.body(()).unwrap()).unwrap();
    let body = if method == "HEAD" {
        Vec::new()
    } else {
        response.body_mut().read_to_vec().unwrap()
    };
    Answer {
        status: response.status().as_u16(),
        headers: response.headers().clone(),
        body,
    }
}

fn get(url: &str, headers: &[(&str, &str)]) -> Answer {
    request("GET", url, headers)
}

#[test]
fn a_browser_reads_a_folder_through_another_nodes_gateway() {
    let temp = tempfile::tempdir().unwrap();
    let nodes = start_network(temp.path(), 5, 4, |_| Vec::new());
    let site = temp.path().join("site");
    fs::create_dir_all(site.join("docs")).unwrap();
    fs::write(site.join("index.html"), "<!doctype html><h1>hello</h1>").unwrap();
    fs::write(site.join("style.css"), "h1 { color: teal }").unwrap();
    fs::write(site.join("docs/a <b>.txt"), "escaped").unwrap();
    // Three and a half segments of 1 MiB: ranges cross segment borders.
    let video: Vec<u8> = (0..(3 << 20) + 524_288u32)
        .map(|i| (i % 251) as u8)
        .collect();
    fs::write(site.join("clip.mp4"), &video).unwrap();
    let put = kith(&nodes[0].dir, &["put", site.to_str().unwrap()]);
    assert!(put.status.success(), "{}", text(&put.stderr));
    let cap = text(&put.stdout).trim().to_owned();

    // `kith gateway` prints the base URL; the reader is node 3.
    let printed = kith(&nodes[3].dir, &["gateway"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    let base = text(&printed.stdout).trim().to_owned();
    let addr = fs::read_to_string(nodes[3].dir.join("gateway.addr")).unwrap();
    assert_eq!(base, format!("http://{}/", addr.trim()));
    let api = fs::read_to_string(nodes[3].dir.join("api.addr")).unwrap();
    assert_ne!(
        addr.trim(),
        api.trim(),
        "the gateway shares the API's origin"
    );
    let url = |path: &str| format!("{base}k/{cap}{path}");

    // The folder's own URL gets its slash, then its index.html.
    let answer = get(&url(""), &[]);
    assert_eq!(answer.status, 301);
    assert_eq!(answer.header("location"), format!("./{cap}/"));
    let answer = get(&url("/"), &[]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body, b"<!doctype html><h1>hello</h1>");
    assert!(answer.header("content-type").starts_with("text/html"));

    // A file: its media type, an ETag, immutable, and 304 on a match.
    let answer = get(&url("/style.css"), &[]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-type"), "text/css");
    assert_eq!(answer.header("x-content-type-options"), "nosniff");
    assert!(answer.header("cache-control").contains("immutable"));
    let etag = answer.header("etag").to_owned();
    assert!(etag.starts_with('"') && etag.len() > 10, "{etag}");
    let answer = get(&url("/style.css"), &[("If-None-Match", &etag)]);
    assert_eq!(answer.status, 304);
    assert!(answer.body.is_empty());

    // A folder without index.html: a listing, its names escaped.
    let answer = get(&url("/docs/"), &[]);
    assert_eq!(answer.status, 200);
    let listing = String::from_utf8(answer.body).unwrap();
    assert!(listing.contains("a &lt;b&gt;.txt"), "{listing}");
    assert!(listing.contains("href=\"./a%20%3Cb%3E.txt\""), "{listing}");
    let answer = get(&url("/docs/a%20%3Cb%3E.txt"), &[]);
    assert_eq!(answer.body, b"escaped");

    // HEAD: the size, no body.
    let answer = request("HEAD", &url("/clip.mp4"), &[]);
    assert_eq!(answer.status, 200);
    assert_eq!(answer.header("content-length"), video.len().to_string());
    assert_eq!(answer.header("accept-ranges"), "bytes");
    assert_eq!(answer.header("content-type"), "video/mp4");

    // Ranges: first byte, across a segment border, the last byte, a suffix.
    let len = video.len();
    for (range, from, to) in [
        ("bytes=0-0".to_owned(), 0, 1),
        ("bytes=1048570-1048589".to_owned(), 1_048_570, 1_048_590),
        (format!("bytes={}-", len - 1), len - 1, len),
        ("bytes=-100".to_owned(), len - 100, len),
        ("bytes=2000000-".to_owned(), 2_000_000, len),
    ] {
        let answer = get(&url("/clip.mp4"), &[("Range", &range)]);
        assert_eq!(answer.status, 206, "{range}");
        assert_eq!(
            answer.header("content-range"),
            format!("bytes {from}-{}/{len}", to - 1),
            "{range}"
        );
        assert!(answer.body == video[from..to], "{range}: wrong bytes");
    }
    let answer = get(&url("/clip.mp4"), &[("Range", &format!("bytes={len}-"))]);
    assert_eq!(answer.status, 416);
    assert_eq!(answer.header("content-range"), format!("bytes */{len}"));
    let whole = get(&url("/clip.mp4"), &[]);
    assert_eq!(whole.status, 200);
    assert!(whole.body == video, "the whole file differs");

    // Not there, not a capability, and no way out of the folder.
    let answer = get(&url("/nothing.html"), &[]);
    assert_eq!(answer.status, 404);
    assert!(String::from_utf8_lossy(&answer.body).contains("has no entry"));
    assert_eq!(get(&format!("{base}k/kith:nonsense/"), &[]).status, 400);
    for climbing in [
        "/docs/../style.css",
        "/docs/%2e%2e/style.css",
        "/docs%5c..%5cstyle.css",
    ] {
        let answer = get(&url(climbing), &[]);
        assert_eq!(answer.status, 400, "{climbing}");
        assert!(
            !String::from_utf8_lossy(&answer.body).contains("teal"),
            "{climbing}"
        );
    }
    // The gateway is not the API, and writes nothing.
    assert_eq!(get(&format!("{base}v1/health"), &[]).status, 404);
    assert_eq!(request("POST", &url("/style.css"), &[]).status, 405);
}
