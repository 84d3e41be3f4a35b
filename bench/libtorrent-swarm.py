#!/usr/bin/env python3
"""The swarming bar, measured on this machine: libtorrent, one seeder, four
leechers of the same file, all on 127.0.0.1, each in a process of its own
(as kith's nodes are in bench/swarm.sh).

    bench/libtorrent-swarm.py FILE

Prints two lines that bench/swarm.sh reads:

    libtorrent_seconds 18.4      (from the start until all four have it)
    libtorrent_seeder_bytes 1.3e9 (payload the seeder uploaded)

With LT_LEECHERS=N, N leechers instead of four (bench/put-get.sh uses one:
the anchor of `kith send`).

With LT_PRIME_BYTES=N, N bytes are written to a file and deleted just
before the timer starts (bench/swarm.sh gives kith's fetchers the same
start: see "Memory" there).

With LT_HOSTS="NS:IP NS:IP ..." (five of them: the seeder's, then the
leechers'), each session runs in network namespace NS and listens on IP, as
bench/swarm.sh sets up when it limits the holder's uplink.

Needs libtorrent's Python binding (Debian: python3-libtorrent;
bench/anchors.sh libtorrent finds or installs one). TCP only (no
uTP), no DHT, LSD, UPnP or NAT-PMP: the five processes find each other only
through the addresses given here. Each leecher verifies every piece it gets
against the torrent's SHA-1 hashes (libtorrent does that by itself), and the
script compares each finished copy with the original byte for byte.
"""

import filecmp
import os
import subprocess
import sys
import tempfile
import time

import libtorrent as lt

LEECHERS = int(os.environ.get("LT_LEECHERS", "4"))  # 1 for the direct-send anchor
BASE_PORT = 46881
PIECE = 1 << 20  # 1 MiB, the size of a kith segment
TIMEOUT_S = 600


def hosts():
    """Per session: (network namespace or None, address)."""
    given = os.environ.get("LT_HOSTS", "").split()
    if not given:
        return [(None, "127.0.0.1")] * (LEECHERS + 1)
    if len(given) != LEECHERS + 1:
        sys.exit(f"LT_HOSTS needs {LEECHERS + 1} NS:IP entries")
    return [tuple(entry.split(":", 1)) for entry in given]


def session(ip, port):
    return lt.session(
        {
            "listen_interfaces": f"{ip}:{port}",
            "enable_dht": False,
            "enable_lsd": False,
            "enable_upnp": False,
            "enable_natpmp": False,
            "enable_incoming_utp": False,
            "enable_outgoing_utp": False,
            "allow_multiple_connections_per_ip": True,
            "alert_mask": 0,
        }
    )


def role(kind, index, torrent, save_path):
    """Runs one seeder or leecher until told to stop (stdin closes)."""
    places = hosts()
    port = BASE_PORT + index
    ses = session(places[index][1], port)
    params = lt.add_torrent_params()
    params.ti = lt.torrent_info(torrent)
    params.save_path = save_path
    if kind == "seed":
        params.flags |= lt.torrent_flags.seed_mode
    handle = ses.add_torrent(params)
    # Everyone knows everyone: the seeder and every other leecher.
    for other in range(LEECHERS + 1):
        if other != index:
            handle.connect_peer((places[other][1], BASE_PORT + other))
    print("ready", flush=True)
    reported = False
    while True:
        status = handle.status()
        if kind == "leech" and status.is_seeding and not reported:
            print("done", flush=True)
            reported = True
        if kind == "seed" and sys.stdin in select_readable():
            print(f"uploaded {status.total_payload_upload}", flush=True)
            return
        if kind == "leech" and reported and sys.stdin in select_readable():
            return
        time.sleep(0.05)


def select_readable():
    import select

    readable, _, _ = select.select([sys.stdin], [], [], 0)
    return readable


def prime(folder, size):
    """Writes `size` bytes to a file in `folder` and deletes it."""
    if size <= 0:
        return
    path = os.path.join(folder, "prime")
    chunk = bytes(1 << 20)
    with open(path, "wb") as out:
        for _ in range(0, size, len(chunk)):
            out.write(chunk)
    os.remove(path)


def main():
    if len(sys.argv) >= 2 and sys.argv[1] in ("seed", "leech"):
        role(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])
        return
    path = os.path.abspath(sys.argv[1])
    work = tempfile.mkdtemp(prefix="kith-lt-")
    storage = lt.file_storage()
    lt.add_files(storage, path)
    creator = lt.create_torrent(storage, PIECE)
    lt.set_piece_hashes(creator, os.path.dirname(path))
    torrent = os.path.join(work, "file.torrent")
    with open(torrent, "wb") as out:
        out.write(lt.bencode(creator.generate()))

    me = os.path.abspath(__file__)
    places = hosts()

    def command(kind, index, folder):
        netns = places[index][0]
        prefix = ["ip", "netns", "exec", netns] if netns else []
        return prefix + [sys.executable, me, kind, str(index), torrent, folder]

    procs = []
    seed = subprocess.Popen(
        command("seed", 0, os.path.dirname(path)),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    procs.append(seed)
    seed.stdout.readline()
    prime(work, int(os.environ.get("LT_PRIME_BYTES", "0")))
    started = time.monotonic()
    leechers = []
    for index in range(1, LEECHERS + 1):
        folder = os.path.join(work, f"l{index}")
        os.mkdir(folder)
        leecher = subprocess.Popen(
            command("leech", index, folder),
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
        )
        procs.append(leecher)
        leechers.append((leecher, folder))
    try:
        for leecher, _ in leechers:
            if leecher.stdout.readline().strip() != "ready":
                sys.exit("a leecher did not start")
        for leecher, _ in leechers:
            line = leecher.stdout.readline().strip()
            if line != "done" or time.monotonic() - started > TIMEOUT_S:
                sys.exit("a leecher did not finish")
        elapsed = time.monotonic() - started
        seed.stdin.close()
        uploaded = int(seed.stdout.readline().split()[1])
        name = os.path.basename(path)
        for _, folder in leechers:
            if not filecmp.cmp(path, os.path.join(folder, name), shallow=False):
                sys.exit("a leecher's copy differs from the original")
        print(f"libtorrent_seconds {elapsed:.1f}")
        print(f"libtorrent_seeder_bytes {uploaded}")
    finally:
        for proc in procs:
            if proc.stdin and not proc.stdin.closed:
                proc.stdin.close()
        for proc in procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        subprocess.run(["rm", "-rf", work], check=False)


if __name__ == "__main__":
    main()
