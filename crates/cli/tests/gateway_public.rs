//! The gateway's limits for strangers, with real `kith up` processes on
//! 127.0.0.1: past `gateway_rate` a client gets `429` with `Retry-After`
//! and is served again once its bucket refills; a file past
//! `gateway_max_response` is refused with a page that says why, while a
//! `Range` within the cap is served; and nothing but reading is reachable
//! on the gateway (no write method, no API route, no web app). A
//! community gateway set to serve only what it mirrors refuses the rest
//! with a sentence, logs requests only as asked, and paces each client's
//! bytes; all of it changes on `SIGHUP` without a restart.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::time::{Duration, Instant};

use common::*;

struct Answer {
    status: u16,
    retry_after: Option<String>,
    body: String,
    bytes: Vec<u8>,
}

fn request(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let mut builder = ureq::http::Request::builder().method(method).uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let mut response = agent.run(builder.body(()).unwrap()).unwrap();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|value| value.to_str().unwrap().to_owned());
    let body = response.body_mut().read_to_vec().unwrap();
    Answer {
        status: response.status().as_u16(),
        retry_after,
        body: String::from_utf8_lossy(&body).into_owned(),
        bytes: body,
    }
}

/// `method url`, asked again while the gateway answers 429 (this test's
/// own earlier requests use up the low rate it sets).
fn past_the_rate(method: &str, url: &str, headers: &[(&str, &str)]) -> Answer {
    let mut answer = None;
    wait_for(
        &format!("{method} {url} past the rate limit"),
        Duration::from_secs(20),
        || {
            let got = request(method, url, headers);
            let served = got.status != 429;
            answer = Some(got);
            served
        },
    );
    answer.unwrap()
}

#[test]
fn a_public_gateway_limits_each_client_and_serves_only_reading() {
    let temp = tempfile::tempdir().unwrap();
    // The reader's gateway: 2 requests a second (a burst of 4) and files
    // of at most 100 KiB sent whole.
    let reader_dir = temp.path().join("n2");
    fs::create_dir_all(&reader_dir).unwrap();
    fs::write(
        reader_dir.join("config.toml"),
        "gateway_rate = 2\ngateway_max_response = \"100KiB\"\n",
    )
    .unwrap();
    let nodes = start_network(temp.path(), 3, 2, |_| Vec::new());
    let small = temp.path().join("small.txt");
    fs::write(&small, "hello, stranger").unwrap();
    let big = temp.path().join("big.bin");
    random_file(&big, 300 << 10);
    let put = |path: &std::path::Path| {
        let output = kith(
            &nodes[0].dir,
            &["put", path.to_str().unwrap(), "--shares", "2/3"],
        );
        assert!(output.status.success(), "{}", text(&output.stderr));
        text(&output.stdout).trim().to_owned()
    };
    let (small_cap, big_cap) = (put(&small), put(&big));
    let base = text(&kith(&nodes[2].dir, &["gateway"]).stdout)
        .trim()
        .to_owned();
    let small_url = format!("{base}k/{small_cap}");

    // The burst, then 429 with Retry-After and a sentence.
    let mut answers = Vec::new();
    for _ in 0..8 {
        answers.push(request("GET", &small_url, &[]));
    }
    assert_eq!(answers[0].status, 200);
    assert_eq!(answers[0].body, "hello, stranger");
    let refused = answers
        .iter()
        .find(|answer| answer.status == 429)
        .expect("8 requests at once pass a rate of 2 a second with a burst of 4");
    let retry: u64 = refused.retry_after.as_deref().unwrap().parse().unwrap();
    assert!(retry >= 1, "{retry}");
    assert!(
        refused.body.contains("Too many requests"),
        "{}",
        refused.body
    );
    // Once the bucket refills, the same client is served again.
    let again = past_the_rate("GET", &small_url, &[]);
    assert_eq!(again.status, 200);

    // Past the size cap: refused with the reason; a Range within it is
    // served.
    let big_url = format!("{base}k/{big_cap}");
    let whole = past_the_rate("GET", &big_url, &[]);
    assert_eq!(whole.status, 403, "{}", whole.body);
    assert!(
        whole.body.contains("larger than this gateway sends"),
        "{}",
        whole.body
    );
    let part = past_the_rate("GET", &big_url, &[("Range", "bytes=0-1023")]);
    assert_eq!(part.status, 206);
    assert_eq!(part.bytes, fs::read(&big).unwrap()[..1024]);

    // Only reading: no write method, no API route (not even with the
    // token), no web app.
    let token = fs::read_to_string(nodes[2].dir.join("api.token")).unwrap();
    let bearer = format!("Bearer {}", token.trim());
    for method in ["POST", "PUT", "DELETE"] {
        let answer = past_the_rate(method, &small_url, &[]);
        assert_eq!(answer.status, 405, "{method}");
    }
    for path in ["v1/id", "v1/put", "v1/status", "dashboard", "app.js"] {
        let answer = past_the_rate(
            "GET",
            &format!("{base}{path}"),
            &[("Authorization", &bearer)],
        );
        assert_eq!(answer.status, 404, "{path}: {}", answer.body);
    }
}

/// `kith put PATH` on the node in `dir`: the capability.
fn put(dir: &std::path::Path, path: &std::path::Path) -> String {
    let output = kith(dir, &["put", path.to_str().unwrap(), "--shares", "2/3"]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

/// `kith name publish CAP [--label LABEL]` on the node in `dir`: the name.
fn publish(dir: &std::path::Path, cap: &str, label: &str) -> String {
    let output = kith(dir, &["name", "publish", cap, "--label", label]);
    assert!(output.status.success(), "{}", text(&output.stderr));
    text(&output.stdout).trim().to_owned()
}

#[test]
fn a_community_gateway_serves_only_its_mirrors_logs_as_asked_and_paces_clients() {
    let temp = tempfile::tempdir().unwrap();
    let gateway_dir = temp.path().join("n2");
    fs::create_dir_all(&gateway_dir).unwrap();
    let config = gateway_dir.join("config.toml");
    fs::write(
        &config,
        "gateway_serves = \"mirrored\"\ngateway_log = \"requests\"\n",
    )
    .unwrap();
    let nodes = start_network(temp.path(), 3, 2, |_| Vec::new());
    let (publisher, gateway) = (&nodes[0], &nodes[2]);

    // Two sites; the community server mirrors one.
    let site = temp.path().join("site");
    fs::create_dir_all(&site).unwrap();
    fs::write(site.join("index.html"), "<h1>the members' site</h1>").unwrap();
    let other = temp.path().join("other");
    fs::create_dir_all(&other).unwrap();
    fs::write(other.join("index.html"), "<h1>someone else</h1>").unwrap();
    let site_cap = put(&publisher.dir, &site);
    let other_cap = put(&publisher.dir, &other);
    let mirrored_name = publish(&publisher.dir, &site_cap, "members");
    let other_name = publish(&publisher.dir, &other_cap, "other");
    let mirrored = kith(&gateway.dir, &["mirror", &mirrored_name]);
    assert!(mirrored.status.success(), "{}", text(&mirrored.stderr));
    let base = text(&kith(&gateway.dir, &["gateway"]).stdout)
        .trim()
        .to_owned();

    // What is mirrored is served: the site by its name and by the
    // capability of the tree held; the home page lists it.
    let page = request("GET", &format!("{base}n/{mirrored_name}/"), &[]);
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("the members' site"), "{}", page.body);
    let by_cap = request("GET", &format!("{base}k/{site_cap}/"), &[]);
    assert_eq!(by_cap.status, 200, "{}", by_cap.body);
    let home = request("GET", &base, &[]);
    assert!(home.body.contains(&mirrored_name), "{}", home.body);
    assert!(!home.body.contains(&other_name), "{}", home.body);

    // Anything else is refused with a sentence, and nothing is fetched
    // for it.
    let peer = peer_ids(&gateway.dir).into_iter().next().unwrap();
    for url in [
        format!("{base}n/{other_name}/"),
        format!("{base}k/{other_cap}/"),
        format!("{base}f/{peer}/"),
    ] {
        let refused = request("GET", &url, &[]);
        assert_eq!(refused.status, 403, "{url}: {}", refused.body);
        assert!(
            refused
                .body
                .contains("serves only the sites its operator mirrors"),
            "{url}: {}",
            refused.body
        );
    }

    // The log has one line per request, without the client's address.
    let log = gateway.stderr.lock().unwrap().clone();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("kith_gateway")).collect();
    assert!(
        lines
            .iter()
            .any(|line| line.contains("GET 127.0.0.1") && line.contains(" 403 ")),
        "{log}"
    );
    assert!(
        lines.iter().all(|line| !line.contains("127.0.0.1 GET")),
        "no address unless asked: {log}"
    );

    // SIGHUP: everything served, each client paced at 100 KiB/s, the
    // address logged.
    fs::write(
        &config,
        "gateway_serves = \"everything\"\ngateway_log = \"requests-and-addresses\"\n\
         gateway_max_upload_per_client = \"100KiB\"\n",
    )
    .unwrap();
    hang_up_and_wait_for(gateway, "gateway_max_upload_per_client");
    let now_served = request("GET", &format!("{base}n/{other_name}/"), &[]);
    assert_eq!(now_served.status, 200, "{}", now_served.body);
    assert!(gateway.stderr.lock().unwrap().contains("127.0.0.1 GET "));

    // 400 KiB at 100 KiB/s with a second's burst: at least 3 s (the
    // pages above were far under the burst). Only the lower bound is
    // checked: a loaded machine may take longer.
    let big = temp.path().join("big.bin");
    random_file(&big, 400 << 10);
    let big_cap = put(&publisher.dir, &big);
    let started = Instant::now();
    let whole = request("GET", &format!("{base}k/{big_cap}"), &[]);
    let took = started.elapsed();
    eprintln!("400 KiB under a 100 KiB/s per-client cap set by SIGHUP: {took:.1?}");
    assert_eq!(whole.status, 200);
    assert_eq!(whole.bytes, fs::read(&big).unwrap());
    assert!(
        took >= Duration::from_millis(2_800),
        "400 KiB under a 100 KiB/s cap came in {took:?}"
    );
}
