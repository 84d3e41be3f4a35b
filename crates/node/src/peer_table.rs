//! The peer table file: peers this node knew, so a restart rejoins the
//! network with no bootstrap address.
//!
//! `DIR/peers` is plain text, one `PEER_ID MULTIADDR` pair per line, written
//! atomically. It is a cache, not a source of truth: a line that does not
//! parse is skipped with a warning rather than stopping the node, and the
//! file is rewritten from the live routing table on the next save.

use kith_net::{Multiaddr, PeerId};

/// The peer table's file name in the data folder.
pub const PEER_TABLE_FILE: &str = "peers";

/// At most this many addresses are saved; a bounded file for a bounded read.
pub const MAX_SAVED_ADDRS: usize = 1024;

/// Reads the file's text; returns the pairs and the number of bad lines.
pub fn parse(text: &str) -> (Vec<(PeerId, Multiaddr)>, usize) {
    let mut peers = Vec::new();
    let mut bad = 0;
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = line.split_once(' ').and_then(|(peer, addr)| {
            Some((
                peer.parse::<PeerId>().ok()?,
                addr.trim().parse::<Multiaddr>().ok()?,
            ))
        });
        match parsed {
            Some(pair) if peers.len() < MAX_SAVED_ADDRS => peers.push(pair),
            Some(_) => {}
            None => bad += 1,
        }
    }
    (peers, bad)
}

/// The file's text for the given peers (at most [`MAX_SAVED_ADDRS`] lines).
pub fn render(peers: &[(PeerId, Vec<Multiaddr>)]) -> String {
    let mut text =
        String::from("# kith peer table: peers this node knew, used to rejoin after a restart.\n");
    let pairs = peers
        .iter()
        .flat_map(|(peer, addrs)| addrs.iter().map(move |addr| (peer, addr)))
        .take(MAX_SAVED_ADDRS);
    for (peer, addr) in pairs {
        text.push_str(&format!("{peer} {addr}\n"));
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_skips_bad_lines() {
        let peer = PeerId::random();
        let addr: Multiaddr = "/ip4/127.0.0.1/tcp/4001".parse().unwrap();
        let text = render(&[(peer, vec![addr.clone()])]);
        let damaged = format!("{text}garbage line\n12D3KooWbad /ip4/1.2.3.4/tcp/1\n");
        let (peers, bad) = parse(&damaged);
        assert_eq!(peers, vec![(peer, addr)]);
        assert_eq!(bad, 2);
    }
}
