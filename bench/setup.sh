#!/bin/sh
# Installs the benchmark's load generator (wrk, Debian package) when it is missing and we run as root.
# Without root or without apt-get the runner falls back to its Node load generator (bench/lib/loadgen.ts).
set -u
if command -v wrk >/dev/null 2>&1; then
  exit 0
fi
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "bench/setup.sh: wrk missing and cannot install it (need root and apt-get); using the Node load generator" >&2
  exit 1
fi
echo "bench/setup.sh: installing wrk" >&2
export DEBIAN_FRONTEND=noninteractive
if ! apt-get install -y --no-install-recommends wrk >/dev/null 2>&1; then
  apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends wrk >/dev/null 2>&1
fi
command -v wrk >/dev/null 2>&1
