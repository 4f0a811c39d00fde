#!/usr/bin/env bash
# A newer restic than Debian 12's 0.14 for benches/compare.sh: the restic package of Debian's
# next release (13, "trixie": 0.18.0 on 2026-12-07; a static Go binary that needs only libc),
# fetched from the same Debian mirror as this machine's apt sources and unpacked into
# ${COOP_TEST_CACHE:-~/.cache/coop-test}/restic. Nothing is installed system-wide and the
# machine's own package lists are left alone (apt runs on a private list in a temporary dir).
# compare.sh runs it as the tool "restic-new" when it is there.
# usage: benches/get-restic.sh [SUITE]   (default trixie)
set -euo pipefail
suite=${1:-trixie}
dest="${COOP_TEST_CACHE:-$HOME/.cache/coop-test}/restic"
uri=$(awk '/^URIs:/ { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
[ -n "$uri" ] || uri=$(awk '$1 == "deb" { print $2; exit }' /etc/apt/sources.list)
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$tmp/lists/partial" "$tmp/cache/archives/partial"
echo "deb $uri $suite main" > "$tmp/sources.list"
O=(-o APT::Sandbox::User=root -o "Dir::Etc::sourcelist=$tmp/sources.list" -o Dir::Etc::sourceparts=- -o "Dir::State::Lists=$tmp/lists" -o "Dir::Cache=$tmp/cache")
apt-get "${O[@]}" update -qq
(cd "$tmp" && apt-get "${O[@]}" download restic 2>/dev/null)
rm -rf "$dest"
mkdir -p "$dest"
dpkg-deb -x "$tmp"/restic_*.deb "$dest"
"$dest/usr/bin/restic" version
