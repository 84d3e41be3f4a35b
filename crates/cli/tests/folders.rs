//! Folders end to end with real `kith up` processes on 127.0.0.1: `kith put
//! DIR`, `kith ls`, `kith get CAP/path` and `kith get CAP -o DIR` across five
//! nodes, with nested folders, a web page, a 20 MiB video and 1,000 small
//! files; what a walk skips; and the errors for paths that are not there.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;

use common::*;

/// Every file under `root`, by its path relative to `root`.
fn tree(root: &Path) -> BTreeMap<String, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, found: &mut BTreeMap<String, Vec<u8>>) {
        for entry in fs::read_dir(dir).unwrap().map(Result::unwrap) {
            let path = entry.path();
            if path.is_dir() {
                walk(root, &path, found);
            } else {
                let relative = path
                    .strip_prefix(root)
                    .unwrap()
                    .to_string_lossy()
                    .into_owned();
                found.insert(relative, fs::read(&path).unwrap());
            }
        }
    }
    let mut found = BTreeMap::new();
    walk(root, root, &mut found);
    found
}

/// Runs `kith ARGS` on `node`; stdout, or a panic with stderr.
fn ok(node: &Daemon, args: &[&str]) -> String {
    let output = kith(&node.dir, args);
    assert!(
        output.status.success(),
        "kith {args:?} failed: {}",
        text(&output.stderr)
    );
    text(&output.stdout)
}

/// Runs `kith ARGS` on `node`, which must fail; its stderr.
fn fails(node: &Daemon, args: &[&str]) -> String {
    let output = kith(&node.dir, args);
    assert!(
        !output.status.success(),
        "kith {args:?} should have failed: {}",
        text(&output.stdout)
    );
    text(&output.stderr)
}

/// A small site: nested folders, a page, a style sheet, an image, a video
/// and 1,000 small files.
fn write_site(site: &Path) {
    fs::create_dir_all(site.join("img")).unwrap();
    fs::create_dir_all(site.join("video")).unwrap();
    fs::create_dir_all(site.join("notes/deep/deeper")).unwrap();
    fs::create_dir_all(site.join("empty")).unwrap();
    fs::write(
        site.join("index.html"),
        "<!doctype html><link rel=stylesheet href=style.css><img src=img/cat.png>",
    )
    .unwrap();
    fs::write(site.join("style.css"), "body { color: #333 }").unwrap();
    random_file(&site.join("img/cat.png"), 40_000);
    random_file(&site.join("video/clip.mp4"), 20 << 20);
    fs::write(site.join("notes/deep/deeper/a note.txt"), "deep inside").unwrap();
    fs::create_dir_all(site.join("many")).unwrap();
    for i in 0..1000 {
        fs::write(
            site.join(format!("many/{i:04}.txt")),
            format!("small file {i}\n"),
        )
        .unwrap();
    }
}

#[test]
fn a_folder_is_put_listed_and_fetched_whole_and_by_path() {
    let temp = tempfile::tempdir().unwrap();
    let nodes = start_network(temp.path(), 5, 4, |_| Vec::new());
    let site = temp.path().join("site");
    write_site(&site);
    // Skipped, each with a line on stderr: a symbolic link.
    std::os::unix::fs::symlink("/etc/passwd", site.join("link")).unwrap();

    let output = kith(&nodes[0].dir, &["put", site.to_str().unwrap()]);
    let stderr = text(&output.stderr);
    assert!(output.status.success(), "put failed: {stderr}");
    let stdout = text(&output.stdout);
    let cap = stdout.trim().to_owned();
    assert_eq!(
        stdout.lines().count(),
        1,
        "put printed more than a capability: {stdout}"
    );
    assert!(cap.starts_with("kith:"), "{cap}");
    assert!(
        stderr.contains("skipped") && stderr.contains("link") && stderr.contains("symbolic"),
        "{stderr}"
    );
    assert!(stderr.contains("1005 file(s) in 8 folder(s)"), "{stderr}");

    // `kith ls` on another node: every entry, every level down.
    let listing = ok(&nodes[3], &["ls", &cap]);
    let lines: Vec<&str> = listing.lines().collect();
    assert_eq!(lines.len(), 1005 + 7, "{listing}");
    assert!(
        lines.contains(&"file\t20971520\tvideo/clip.mp4"),
        "{listing}"
    );
    assert!(lines.contains(&"folder\t0\tempty/"), "{listing}");
    assert!(
        lines.contains(&"file\t11\tnotes/deep/deeper/a note.txt"),
        "{listing}"
    );
    assert!(lines.contains(&"folder\t11\tnotes/deep/"), "{listing}");
    assert!(!listing.contains("link"), "{listing}");
    // A subfolder by path.
    let images = ok(&nodes[3], &["ls", &format!("{cap}/img")]);
    assert_eq!(images.trim(), "file\t40000\tcat.png");

    // One file out of the folder, on a node that stored nothing of it.
    let cat = temp.path().join("cat.png");
    ok(
        &nodes[4],
        &[
            "get",
            &format!("{cap}/img/cat.png"),
            "-o",
            cat.to_str().unwrap(),
        ],
    );
    assert_eq!(
        fs::read(&cat).unwrap(),
        fs::read(site.join("img/cat.png")).unwrap()
    );
    let note = ok(
        &nodes[4],
        &["get", &format!("{cap}/notes/deep/deeper/a note.txt")],
    );
    assert_eq!(note, "deep inside");

    // The whole folder, byte for byte, empty folders included.
    let out = temp.path().join("out");
    let stderr = text(&kith(&nodes[2].dir, &["get", &cap, "-o", out.to_str().unwrap()]).stderr);
    let mut expected = tree(&site);
    expected.retain(|path, _| path != "link");
    let got = tree(&out);
    assert_eq!(got.len(), expected.len(), "{stderr}");
    for (path, bytes) in &expected {
        assert!(
            got.get(path) == Some(bytes),
            "{path} differs after the round trip"
        );
    }
    assert!(out.join("empty").is_dir());
    // Nothing was left beside it.
    let leftovers: Vec<_> = fs::read_dir(temp.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name.starts_with(".kith-get-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");

    // Media types come from the names: the API's answer for a page.
    let dir = &nodes[1].dir;
    let addr = fs::read_to_string(dir.join("api.addr")).unwrap();
    let token = fs::read_to_string(dir.join("api.token")).unwrap();
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let content_type = |path: &str| {
        let url = format!("http://{}/v1/get?cap={cap}/{path}", addr.trim());
        let mut response = agent
            .get(&url)
            .header("Authorization", format!("Bearer {}", token.trim()))
            .call()
            .unwrap();
        let _ = response.body_mut().read_to_vec();
        response.headers()["content-type"]
            .to_str()
            .unwrap()
            .to_owned()
    };
    assert_eq!(content_type("index.html"), "text/html");
    assert_eq!(content_type("style.css"), "text/css");
    assert_eq!(content_type("img/cat.png"), "image/png");
    assert_eq!(content_type("video/clip.mp4"), "video/mp4");

    // Paths that are not there, and paths that try to climb out.
    let error = fails(&nodes[1], &["get", &format!("{cap}/img/dog.png")]);
    assert!(error.contains("has no entry \"dog.png\""), "{error}");
    let error = fails(&nodes[1], &["get", &format!("{cap}/index.html/x")]);
    assert!(error.contains("is a file, not a folder"), "{error}");
    for climbing in ["../x", "img/../../x", "img\\..\\x"] {
        let error = fails(&nodes[1], &["get", &format!("{cap}/{climbing}")]);
        assert!(error.contains("not valid"), "{climbing}: {error}");
    }
    let error = fails(&nodes[1], &["get", &cap]);
    assert!(error.contains("give -o FOLDER"), "{error}");
    let error = fails(&nodes[1], &["get", &cap, "-o", out.to_str().unwrap()]);
    assert!(error.contains("not empty"), "{error}");
    let file_cap = ok(
        &nodes[1],
        &["put", site.join("style.css").to_str().unwrap()],
    );
    let error = fails(&nodes[1], &["ls", file_cap.trim()]);
    assert!(error.contains("is a file, not a folder"), "{error}");
}
