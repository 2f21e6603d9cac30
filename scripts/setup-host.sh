#!/bin/sh
# Installs the Debian packages the test suite needs when they are missing and we run as root
# (CI runs `npm test` on a machine that has only what the project installs itself).
# Without root or apt-get nothing is installed; tests that need a missing tool skip with the reason.
set -u
# A command missing → its packages (comma-separated): cc and the C library headers build the native test
# addon and the syscall probe of the process-tier tests.
# promtool checks /metrics; chromium runs the web console's browser tests; runc, runsc, ip and nsenter
# run the container and gvisor tiers.
PACKAGES="nats-server:nats-server strace:strace bwrap:bubblewrap cc:gcc,libc6-dev promtool:prometheus chromium:chromium runc:runc runsc:runsc ip:iproute2 nsenter:util-linux"
missing=""
for entry in $PACKAGES; do
  cmd=${entry%%:*}
  pkg=$(echo "${entry#*:}" | tr , ' ')
  command -v "$cmd" >/dev/null 2>&1 || missing="$missing $pkg"
done
[ -z "$missing" ] && exit 0
if [ "$(id -u)" != "0" ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "setup-host: missing$missing and cannot install (need root and apt-get); tests needing them will skip" >&2
  exit 0
fi
echo "setup-host: installing$missing" >&2
export DEBIAN_FRONTEND=noninteractive
# shellcheck disable=SC2086
if ! apt-get install -y --no-install-recommends $missing >/dev/null 2>&1; then
  apt-get update >/dev/null 2>&1 && apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 \
    || echo "setup-host: apt-get could not install$missing; tests needing them will skip" >&2
fi
exit 0
