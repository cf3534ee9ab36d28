#!/usr/bin/env bash
# The main job, from a fresh clone: build the tools, lay out a 1 GB segment with an RDS heap and
# a 30 MB log, then show what was made. Usage: ./demo.sh [DIR]  (default: ./rvm-demo)
#
# Each step prints a one-line title and the command it runs. DEMO_BIN=DIR runs the rdsinit and
# rvmutl in DIR instead of the release build, and CARGO names the cargo to build with (the tests
# set both, CARGO to a stand-in that builds nothing).
set -euo pipefail
cd "$(dirname "$0")"
dir=${1:-rvm-demo}
cargo=${CARGO:-cargo}

step() {
    local title=$1
    shift
    printf '\n== %s\n$ %s\n' "$title" "$*"
    "$@"
}

mkdir -p "$dir"
rm -f "$dir/log" "$dir/data"
step "Build rdsinit and rvmutl (release; the first build downloads crates and takes minutes)" \
    "$cargo" build --release -p rdsinit -p rvmutl
bin=${DEMO_BIN:-target/release}
step "Create a 30 MiB log and a 1 GiB segment with an RDS heap (rdsinit also prints the heap statistics)" \
    "$bin/rdsinit" --log-size 30M "$dir/log" "$dir/data" --data-len 1G --yes
step "The log's status" "$bin/rvmutl" status "$dir/log"
step "The segment's header and regions" "$bin/rvmutl" segment "$dir/data"
step "Check the log, the segment and its heap" "$bin/rvmutl" check "$dir/log" "$dir/data"
