//! The gateway's limits for strangers, with real `kith up` processes on
//! 127.0.0.1: past `gateway_rate` a client gets `429` with `Retry-After`
//! and is served again once its bucket refills; a file past
//! `gateway_max_response` is refused with a page that says why, while a
//! `Range` within the cap is served; and nothing but reading is reachable
//! on the gateway (no write method, no API route, no web app).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::time::Duration;

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
