#!/usr/bin/env bash
# The programs kith's benchmarks compare against, installed when missing,
# and where they are. Prints one path on standard output; what it installs,
# it says on standard error.
#
#   bench/anchors.sh tahoe        # the `tahoe` program of Tahoe-LAFS
#   bench/anchors.sh libtorrent   # a python3 that can `import libtorrent`
#
# - Tahoe-LAFS: a virtualenv under the bench cache, from PyPI
#   (TAHOE_VERSION, default 1.20.0, the release the performance issue
#   measured).
# - libtorrent's Python binding: the system's python3 if it has it; else
#   Debian's python3-libtorrent (apt-get, when run as root); else PyPI's
#   `libtorrent` wheel in a virtualenv under the bench cache.
#
# The bench cache is $KITH_BENCH_CACHE, default ~/.cache/kith-bench. Exits
# non-zero with a sentence when an anchor cannot be had (no network, no
# python3 -m venv): the benchmark then says "not measured" for its row.
set -euo pipefail

cache=${KITH_BENCH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/kith-bench}
say() { echo "anchors: $*" >&2; }

# A virtualenv at $1 (made when missing), with pip packages $2... in it.
venv_with() {
    local venv=$1
    shift
    if [ ! -x "$venv/bin/python3" ]; then
        mkdir -p "$(dirname "$venv")"
        python3 -m venv "$venv" >&2 || {
            say "cannot make a virtualenv at $venv (Debian: apt-get install python3-venv)"
            return 1
        }
    fi
    say "installing $* from PyPI into $venv"
    "$venv/bin/pip" install -q --disable-pip-version-check "$@" >&2
}

case ${1:-} in
tahoe)
    version=${TAHOE_VERSION:-1.20.0}
    venv=$cache/tahoe-$version
    if ! "$venv/bin/tahoe" --version >/dev/null 2>&1; then
        venv_with "$venv" "tahoe-lafs==$version" || {
            say "could not install Tahoe-LAFS $version"
            exit 1
        }
    fi
    echo "$venv/bin/tahoe"
    ;;
libtorrent)
    if /usr/bin/python3 -c 'import libtorrent' 2>/dev/null; then
        echo /usr/bin/python3
        exit 0
    fi
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
        say "installing python3-libtorrent (Debian)"
        if DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-libtorrent >/dev/null 2>&1 ||
            { apt-get update -qq >/dev/null 2>&1 &&
                DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-libtorrent >/dev/null 2>&1; }; then
            if /usr/bin/python3 -c 'import libtorrent' 2>/dev/null; then
                echo /usr/bin/python3
                exit 0
            fi
        fi
    fi
    venv=$cache/libtorrent
    if ! "$venv/bin/python3" -c 'import libtorrent' 2>/dev/null; then
        venv_with "$venv" libtorrent || {
            say "could not install libtorrent's Python binding"
            exit 1
        }
    fi
    echo "$venv/bin/python3"
    ;;
*)
    echo "usage: bench/anchors.sh tahoe|libtorrent" >&2
    exit 2
    ;;
esac
