#!/usr/bin/env bash
# The main job, from a fresh clone: build the tools, lay out a 1 GB segment with an RDS heap and
# a 30 MB log, then show what was made. Usage: ./demo.sh [DIR]  (default: ./rvm-demo)
set -euo pipefail
cd "$(dirname "$0")"
dir=${1:-rvm-demo}
mkdir -p "$dir"
rm -f "$dir/log" "$dir/data"
cargo build --release -q -p rdsinit -p rvmutl
bin=target/release
"$bin/rdsinit" --log-size 30M "$dir/log" "$dir/data" --data-len 1G --yes
echo
"$bin/rvmutl" status "$dir/log"
echo
"$bin/rvmutl" segment "$dir/data"
echo
"$bin/rvmutl" heap "$dir/data"
echo
"$bin/rvmutl" check "$dir/log" "$dir/data"
