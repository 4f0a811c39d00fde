#!/usr/bin/env bash
# Builds the Debian package of coop and prints its path (target/debian/coop_VERSION-1_ARCH.deb).
#
#   scripts/package.sh                                   # this machine's architecture (amd64 here)
#   scripts/package.sh --target aarch64-unknown-linux-gnu  # arm64 (Raspberry Pi OS 64-bit); see README
#   scripts/package.sh --profile release                 # quicker to build, for trying changes
#
# By default the packaging profile (Cargo.toml: the release profile with thin LTO and one
# codegen unit), the build that is released and that CI's packaging test installs;
# COOP_PACKAGE_PROFILE=release does the same as --profile release. Build times and sizes of
# both are in docs/PERFORMANCE.md ("Build profiles").
#
# A build of that profile (the slow part: about half an hour cold on two cores, minutes warm;
# target/ is reused, never cleaned), then the hidden `coop __package-assets` writes the man
# pages, shell completions and the packaged /etc/coop/agent.toml from the binary's own
# definitions, then cargo-deb packs them with the units, recipes and docs listed in
# cli/Cargo.toml [package.metadata.deb].
# Needs cargo and Debian's dpkg-dev; installs cargo-deb into ~/.cargo once.
set -euo pipefail
cd "$(dirname "$0")/.."

target=""
profile="${COOP_PACKAGE_PROFILE:-packaging}"
while [ $# -gt 0 ]; do
  case "$1" in
    --target) target="$2"; shift 2 ;;
    --target=*) target="${1#--target=}"; shift ;;
    --profile) profile="$2"; shift 2 ;;
    --profile=*) profile="${1#--profile=}"; shift ;;
    *) echo "usage: scripts/package.sh [--target TRIPLE] [--profile packaging|release]" >&2; exit 2 ;;
  esac
done
case "$profile" in
  packaging | release) ;;
  *) echo "package.sh: --profile is packaging or release (Cargo.toml), not $profile" >&2; exit 2 ;;
esac

export PATH="$HOME/.cargo/bin:$PATH"
if ! command -v cargo-deb >/dev/null; then
  echo "== cargo install cargo-deb (once, into ~/.cargo)" >&2
  cargo install cargo-deb --locked
fi
if ! command -v dpkg-shlibdeps >/dev/null; then
  if [ "$(id -u)" = 0 ]; then
    echo "== apt-get install dpkg-dev (dpkg-shlibdeps computes Depends)" >&2
    (cd / && { apt-get install -y -qq dpkg-dev >/dev/null || { apt-get update -qq && apt-get install -y -qq dpkg-dev >/dev/null; }; })
  else
    echo "package.sh: dpkg-shlibdeps not found: apt-get install dpkg-dev" >&2
    exit 1
  fi
fi

# The package version is the workspace's; the changelog's top entry must say the same.
version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
changelog_version=$(dpkg-parsechangelog -l packaging/debian/changelog -S Version)
if [ "$changelog_version" != "$version-1" ]; then
  echo "package.sh: packaging/debian/changelog is at $changelog_version, the workspace at $version: add an entry for $version-1" >&2
  exit 1
fi

target_dir="${CARGO_TARGET_DIR:-target}"
echo "== cargo build --profile $profile -p coop-cli${target:+ --target $target}" >&2
cargo build --profile "$profile" -p coop-cli
host_bin="$target_dir/$profile/coop"
if [ -n "$target" ]; then
  cargo build --profile "$profile" -p coop-cli --target "$target"
fi

# Man pages, completions and agent.toml do not depend on the architecture: the host binary
# writes them for every target.
assets=packaging/debian/generated
"$host_bin" __package-assets "$assets" >&2

out="$target_dir/debian"
mkdir -p "$out"
rm -f "$out"/coop_*.deb "$out"/coop-dbgsym_*.ddeb
echo "== cargo deb" >&2
# The binary stripped, its line tables in coop-dbgsym (for crash reports from installed
# packages: install it beside coop and backtraces name files and lines).
cargo deb -p coop-cli --no-build --profile "$profile" --dbgsym --compress-debug-symbols=zlib --output "$out" ${target:+--target "$target"} >&2
deb=$(ls "$out"/coop_*.deb)
echo "== $deb ($(du -k "$deb" | cut -f1) KiB)" >&2
echo "$deb"
