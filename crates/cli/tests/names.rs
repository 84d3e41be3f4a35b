//! Names and mirrors, end to end with real `kith up` processes on
//! 127.0.0.1: a name published on one node resolves on the others; a new
//! version reaches every node within 10 s; labels give further names; a
//! mirror follows the name, and once the publisher is gone a node that
//! never saw it resolves the name and loads the site through its gateway.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs;
use std::path::Path;
use std::time::Duration;

use common::*;

/// A small site: an index page naming its version, and a stylesheet.
fn site(root: &Path, version: &str) -> String {
    let dir = root.join(format!("site-{version}"));
    fs::create_dir_all(dir.join("css")).unwrap();
    fs::write(
        dir.join("index.html"),
        format!("<!doctype html><link rel=stylesheet href=css/site.css><h1>{version}</h1>"),
    )
    .unwrap();
    fs::write(dir.join("css/site.css"), "h1 { color: teal }").unwrap();
    dir.display().to_string()
}

fn put(node: &Daemon, path: &str) -> String {
    let put = kith(&node.dir, &["put", path]);
    assert!(put.status.success(), "{}", text(&put.stderr));
    text(&put.stdout).trim().to_owned()
}

fn publish(node: &Daemon, cap: &str, label: Option<&str>) -> String {
    let mut args = vec!["name", "publish", cap];
    if let Some(label) = label {
        args.extend(["--label", label]);
    }
    let published = kith(&node.dir, &args);
    assert!(published.status.success(), "{}", text(&published.stderr));
    text(&published.stdout).trim().to_owned()
}

/// `kith name resolve NAME` on `node`: the capability, or the error.
fn resolve(node: &Daemon, name: &str) -> Result<String, String> {
    let resolved = kith(&node.dir, &["name", "resolve", name]);
    if resolved.status.success() {
        Ok(text(&resolved.stdout).trim().to_owned())
    } else {
        Err(text(&resolved.stderr))
    }
}

fn http_get(url: &str) -> (u16, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut response = agent.get(url).call().unwrap();
    let status = response.status().as_u16();
    (status, response.body_mut().read_to_string().unwrap())
}

/// `method url` with the given `Host` header, no redirects followed:
/// status, `Location`, body.
fn with_host(method: &str, url: &str, host: &str) -> (u16, String, String) {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .build()
        .into();
    let request = ureq::http::Request::builder()
        .method(method)
        .uri(url)
        .header("Host", host)
        .body(())
        .unwrap();
    let mut response = agent.run(request).unwrap();
    let location = response
        .headers()
        .get("location")
        .map(|value| value.to_str().unwrap().to_owned())
        .unwrap_or_default();
    let status = response.status().as_u16();
    (
        status,
        location,
        response.body_mut().read_to_string().unwrap(),
    )
}

fn gateway(node: &Daemon) -> String {
    let printed = kith(&node.dir, &["gateway"]);
    assert!(printed.status.success(), "{}", text(&printed.stderr));
    text(&printed.stdout).trim().to_owned()
}

#[test]
fn a_name_resolves_everywhere_and_follows_new_versions_within_seconds() {
    let temp = tempfile::tempdir().unwrap();
    let nodes = start_network(temp.path(), 5, 4, |_| Vec::new());
    let first = put(&nodes[0], &site(temp.path(), "one"));
    let name = publish(&nodes[0], &first, None);
    assert_eq!(name.len(), 52, "{name}");

    // The default name is the node's own; publishing again keeps it.
    for node in &nodes[1..] {
        assert_eq!(resolve(node, &name), Ok(first.clone()));
    }
    let json = kith(&nodes[2].dir, &["name", "resolve", &name, "--json"]);
    let record: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(record["sequence"], 1);
    assert_eq!(record["capability"], first.as_str());

    // A new version: every node resolves it within 10 s.
    let second = put(&nodes[0], &site(temp.path(), "two"));
    assert_eq!(publish(&nodes[0], &second, None), name);
    for node in &nodes {
        wait_for(
            &format!("{} to resolve the new version", node.dir.display()),
            Duration::from_secs(10),
            || resolve(node, &name).as_deref() == Ok(second.as_str()),
        );
    }
    let json = kith(
        &nodes[3].dir,
        &["name", "resolve", &name, "--json", "--fresh"],
    );
    let record: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(record["sequence"], 2);

    // A label gives another name, the same every time; both are listed.
    let blog = publish(&nodes[0], &first, Some("blog"));
    assert_ne!(blog, name);
    assert_eq!(publish(&nodes[0], &first, Some("blog")), blog);
    assert_eq!(resolve(&nodes[4], &blog), Ok(first.clone()));
    let listed = kith(&nodes[0].dir, &["name", "ls"]);
    let listed = text(&listed.stdout);
    assert!(
        listed.contains(&format!("-\t{name}\t2\t{second}")),
        "{listed}"
    );
    assert!(
        listed.contains(&format!("blog\t{blog}\t2\t{first}")),
        "{listed}"
    );

    // The gateway serves the name's current version, with a short max-age.
    let base = gateway(&nodes[4]);
    let (status, body) = http_get(&format!("{base}n/{name}/"));
    assert_eq!(status, 200);
    assert!(body.contains("<h1>two</h1>"), "{body}");
    let (status, body) = http_get(&format!("{base}n/{name}/css/site.css"));
    assert_eq!((status, body.as_str()), (200, "h1 { color: teal }"));

    // Each site its own origin: <name>.localhost serves the site at its
    // root, and /n/ on localhost is sent there.
    let port = base.trim_end_matches('/').rsplit(':').next().unwrap();
    let site_host = format!("{name}.localhost:{port}");
    let (status, _, body) = with_host("GET", &base, &site_host);
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<h1>two</h1>"), "{body}");
    let (status, _, body) = with_host("GET", &format!("{base}css/site.css"), &site_host);
    assert_eq!((status, body.as_str()), (200, "h1 { color: teal }"));
    let (status, location, _) = with_host(
        "GET",
        &format!("{base}n/{name}/css/site.css"),
        &format!("localhost:{port}"),
    );
    assert_eq!(status, 301);
    assert_eq!(location, format!("http://{site_host}/css/site.css"));
    let (status, _, _) = with_host("POST", &base, &site_host);
    assert_eq!(status, 405);
    let (status, _, body) = with_host("GET", &format!("{base}nothing.txt"), &site_host);
    assert_eq!(status, 404, "{body}");

    // Bad input: one clear sentence each, nothing published.
    let error = resolve(&nodes[1], "not-a-name").unwrap_err();
    assert!(error.contains("not a valid name"), "{error}");
    let unknown = kith_base::Name::from_key(kith_base::Identity::generate().public_key()).unwrap();
    let error = resolve(&nodes[1], &unknown.to_string()).unwrap_err();
    assert!(error.contains("no record of the name"), "{error}");
    let bad = kith(
        &nodes[0].dir,
        &["name", "publish", &first, "--label", "Bad Label"],
    );
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("a label is"),
        "{}",
        text(&bad.stderr)
    );
    let bad = kith(&nodes[0].dir, &["name", "publish", "kith:nonsense"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("not a valid capability"),
        "{}",
        text(&bad.stderr)
    );
}

#[test]
fn a_mirror_follows_the_name_and_keeps_it_alive_after_the_publisher_leaves() {
    let temp = tempfile::tempdir().unwrap();
    // Mirrors look for new versions every 2 s here (30 s by default).
    let nodes = start_network(temp.path(), 5, 4, |i| {
        let dir = temp.path().join(format!("n{i}"));
        fs::create_dir_all(&dir).unwrap();
        fs::write(dir.join("config.toml"), "mirror_check = \"2s\"\n").unwrap();
        Vec::new()
    });
    let (publisher, mirror) = (&nodes[0], &nodes[1]);
    let first = put(publisher, &site(temp.path(), "one"));
    let name = publish(publisher, &first, None);

    let mirrored = kith(&mirror.dir, &["mirror", &name]);
    assert!(mirrored.status.success(), "{}", text(&mirrored.stderr));
    let line = text(&mirrored.stdout);
    assert!(
        line.contains("sequence 1") && line.contains("complete"),
        "{line}"
    );

    // A new version: the mirror copies it on its own.
    let second = put(publisher, &site(temp.path(), "two"));
    publish(publisher, &second, None);
    wait_for(
        "the mirror to follow the new version",
        Duration::from_secs(60),
        || {
            let listed = kith(&mirror.dir, &["mirror", "ls", "--json"]);
            let info: serde_json::Value =
                serde_json::from_slice(text(&listed.stdout).lines().next().unwrap().as_bytes())
                    .unwrap();
            info["sequence"] == 2 && info["held"] == second.as_str()
        },
    );

    // The publisher goes away; a newcomer that never met it joins through
    // the mirror, resolves the name and loads the site through its gateway.
    let mirror_addr = mirror.addr().to_owned();
    let mut nodes = nodes;
    nodes.remove(0).terminate();
    let newcomer = Daemon::start(&temp.path().join("new"), &["--bootstrap", &mirror_addr]);
    wait_until_peers(&newcomer, 3);
    assert_eq!(resolve(&newcomer, &name), Ok(second.clone()));
    let base = gateway(&newcomer);
    let (status, body) = http_get(&format!("{base}n/{name}/"));
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("<h1>two</h1>"), "{body}");
    let (status, body) = http_get(&format!("{base}n/{name}/css/site.css"));
    assert_eq!((status, body.as_str()), (200, "h1 { color: teal }"));

    // Stop mirroring: listed no more; mirroring nonsense is refused.
    let removed = kith(&nodes[0].dir, &["mirror", "rm", &name]);
    assert!(removed.status.success(), "{}", text(&removed.stderr));
    let listed = kith(&nodes[0].dir, &["mirror", "ls"]);
    assert_eq!(text(&listed.stdout).trim(), "");
    let again = kith(&nodes[0].dir, &["mirror", "rm", &name]);
    assert!(
        text(&again.stderr).contains("is not mirrored here"),
        "{}",
        text(&again.stderr)
    );
    let bad = kith(&nodes[0].dir, &["mirror", "nonsense"]);
    assert!(!bad.status.success());
    assert!(
        text(&bad.stderr).contains("not a valid name"),
        "{}",
        text(&bad.stderr)
    );
}
