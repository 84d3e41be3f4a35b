//! Feeds, end to end with real `kith up` processes on 127.0.0.1: posts
//! reach followers; followers carry the feed while its author is offline,
//! to a newcomer that never met the author; a new post reaches followers
//! within seconds; a deletion makes them drop the post; a reply from
//! someone nobody follows reaches the author and its followers.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::*;

fn post(node: &Daemon, args: &[&str]) -> String {
    let mut all = vec!["post"];
    all.extend_from_slice(args);
    let posted = kith(&node.dir, &all);
    assert!(posted.status.success(), "{}", text(&posted.stderr));
    text(&posted.stdout).trim().to_owned()
}

/// The texts of `who`'s posts on `node`, newest first.
fn texts(node: &Daemon, who: &str) -> Vec<String> {
    let feed = kith(&node.dir, &["feed", who, "--json"]);
    assert!(feed.status.success(), "{}", text(&feed.stderr));
    text(&feed.stdout)
        .lines()
        .map(|line| {
            let item: serde_json::Value = serde_json::from_str(line).unwrap();
            item["text"].as_str().unwrap().to_owned()
        })
        .collect()
}

fn follow(node: &Daemon, who: &str) -> String {
    let followed = kith(&node.dir, &["follow", who]);
    assert!(followed.status.success(), "{}", text(&followed.stderr));
    text(&followed.stdout)
}

#[test]
fn followers_carry_a_feed_while_its_author_is_away_and_new_posts_arrive_within_seconds() {
    let temp = tempfile::tempdir().unwrap();
    let mut nodes = start_network(temp.path(), 4, 3, |_| Vec::new());
    let author = nodes[0].peer_id.clone();
    let first = post(&nodes[0], &["first light on the river"]);
    assert_eq!(first.len(), 64, "{first}");
    post(&nodes[0], &["second", "--reply", &first]);
    post(&nodes[0], &["third"]);
    let all_three = vec!["third", "second", "first light on the river"];

    // B and C follow: the whole feed, verified, at once.
    for follower in &nodes[1..3] {
        let said = follow(follower, &author);
        assert!(said.contains("3 entries"), "{said}");
        assert_eq!(texts(follower, &author), all_three);
    }
    // The author's own timeline; B's merges what it follows.
    assert_eq!(texts(&nodes[0], &author), all_three);
    let timeline = kith(&nodes[1].dir, &["feed"]);
    assert!(text(&timeline.stdout).contains("first light on the river"));
    assert!(text(&timeline.stdout).contains("(reply to"));

    // The author goes away; a newcomer that never met it follows it and
    // gets everything from the followers.
    let author_dir = nodes[0].dir.clone();
    let follower_addr = nodes[1].addr().to_owned();
    nodes.remove(0).terminate();
    let newcomer = Daemon::start(&temp.path().join("new"), &["--bootstrap", &follower_addr]);
    wait_until_peers(&newcomer, 2);
    wait_for(
        "the newcomer to get the feed from a follower",
        Duration::from_secs(30),
        || {
            let said = follow(&newcomer, &author);
            said.contains("3 entries") || texts(&newcomer, &author).len() == 3
        },
    );
    assert_eq!(texts(&newcomer, &author), all_three);

    // The author comes back and posts: followers show it within 10 s,
    // nobody asking for it by hand.
    let back = Daemon::start(&author_dir, &["--bootstrap", &follower_addr]);
    wait_until_peers(&back, 2);
    post(&back, &["fourth, after a while away"]);
    for follower in [&nodes[0], &nodes[1], &newcomer] {
        wait_for(
            &format!("{} to show the new post", follower.dir.display()),
            Duration::from_secs(10),
            || {
                texts(follower, &author).first().map(String::as_str)
                    == Some("fourth, after a while away")
            },
        );
    }

    // A deletion: followers drop the post.
    post(&back, &["--delete", &first]);
    for follower in [&nodes[0], &nodes[1]] {
        wait_for(
            &format!("{} to drop the deleted post", follower.dir.display()),
            Duration::from_secs(10),
            || !texts(follower, &author).contains(&"first light on the river".to_owned()),
        );
    }

    // An image attached to a post shows inline on a follower's gateway,
    // which also serves the feed as Atom; the deleted post is gone there.
    let image = temp.path().join("dot.png");
    random_file(&image, 2048);
    post(&back, &["look", "--attach", image.to_str().unwrap()]);
    let gateway = text(&kith(&nodes[0].dir, &["gateway"]).stdout)
        .trim()
        .to_owned();
    let page_url = format!("{gateway}f/{author}/");
    let get = |url: &str| {
        let mut response = ureq::get(url).call().unwrap();
        response.body_mut().read_to_string().unwrap()
    };
    wait_for(
        "the follower's gateway to show the image",
        Duration::from_secs(10),
        || get(&page_url).contains("<img src=\"/k/kith:"),
    );
    let page = get(&page_url);
    assert!(
        page.contains("look") && page.contains("fourth, after a while away"),
        "{page}"
    );
    assert!(!page.contains("first light on the river"), "{page}");
    let image_url = page
        .split("<img src=\"")
        .nth(1)
        .unwrap()
        .split('"')
        .next()
        .unwrap();
    let served = ureq::get(format!("{}{}", gateway.trim_end_matches('/'), image_url))
        .call()
        .unwrap()
        .body_mut()
        .read_to_vec()
        .unwrap();
    assert_eq!(served, std::fs::read(&image).unwrap());
    let atom = get(&format!("{page_url}feed.atom"));
    assert!(
        atom.starts_with("<?xml") && atom.contains("<entry>") && atom.contains("look"),
        "{atom}"
    );

    // A reply from someone nobody follows: the author and its other
    // follower show it under the post, on the command line and the page.
    let look = texts(&back, &author)
        .iter()
        .position(|text| text == "look")
        .unwrap();
    let look_id = {
        let feed = kith(&back.dir, &["feed", &author, "--json"]);
        let line = text(&feed.stdout).lines().nth(look).unwrap().to_owned();
        let item: serde_json::Value = serde_json::from_str(&line).unwrap();
        item["id"].as_str().unwrap().to_owned()
    };
    post(&nodes[1], &["what a sky", "--reply", &look_id]);
    for (node, who) in [(&back, None), (&nodes[0], Some(author.as_str()))] {
        wait_for(
            &format!("{} to show the stranger's reply", node.dir.display()),
            Duration::from_secs(10),
            || {
                let mut args = vec!["feed"];
                args.extend(who);
                text(&kith(&node.dir, &args).stdout).contains("what a sky")
            },
        );
    }
    let page = get(&page_url);
    let (before, after) = page.split_once("what a sky").unwrap();
    assert!(
        before.contains("look") && after.contains("fourth, after a while away"),
        "the reply is not under its post: {page}"
    );

    // Bad input: one clear sentence each.
    let bad = kith(&back.dir, &["post", "--delete", "abc"]);
    assert!(
        text(&bad.stderr).contains("a post id is 64 hex digits"),
        "{}",
        text(&bad.stderr)
    );
    let bad = kith(&back.dir, &["follow", &back.peer_id]);
    assert!(
        text(&bad.stderr).contains("own feed"),
        "{}",
        text(&bad.stderr)
    );
    let bad = kith(&nodes[0].dir, &["unfollow", "nobody"]);
    assert!(!bad.status.success());
    let long = "x".repeat(5000);
    let bad = kith(&back.dir, &["post", &long]);
    assert!(
        text(&bad.stderr).contains("at most 4096 bytes"),
        "{}",
        text(&bad.stderr)
    );
}
