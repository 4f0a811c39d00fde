#!/usr/bin/env bash
# Writes the fixture repository formats/testdata/repo with the coop binary given (default:
# target/debug/coop), its identities, and expected.txt: what it must decode to. Run it only
# when the format changes on purpose; tests/fixture.rs checks that today's coop still reads
# the committed one (old repositories stay readable).
#
#   formats/testdata/make-fixture.sh [COOP]
set -euo pipefail
export LC_ALL=C   # names that are not UTF-8 are bytes
here=$(cd "$(dirname "$0")" && pwd)
coop=$(realpath "${1:-$here/../../target/debug/coop}")
work=$(mktemp -d /tmp/coop-fixture.XXXXXX)
trap 'rm -rf "$work"' EXIT
export XDG_CONFIG_HOME="$work/config" XDG_CACHE_HOME="$work/cache" HOME="$work/home"
rm -rf "$here/repo" "$here/identity.txt" "$here/alice.identity" "$here/expected.txt"

# The source tree, under a fixed path so that the snapshot's paths are the same every time.
src=/tmp/coop-fixture-src
rm -rf "$src"
mkdir -p "$src/dir/sub" "$src/alice"
: > "$src/empty"
printf 'hello, coop\n' > "$src/dir/hello.txt"
truncate -s 1M "$src/sparse"
printf 'end' >> "$src/sparse"
ln "$src/dir/hello.txt" "$src/dir/hardlink"
ln -s hello.txt "$src/dir/symlink"
printf 'not utf-8\n' > "$src/dir/$(printf 'caf\xe9')"
printf 'attrs\n' > "$src/dir/sub/with-xattr"
python3 -c 'import os, sys; os.setxattr(sys.argv[1], "user.coop.note", b"fixture")' "$src/dir/sub/with-xattr"
chmod 0750 "$src/dir/sub"
printf 'alice notes\n' > "$src/alice/notes.md"
touch -h -d '2026-11-23 12:00:00 UTC' "$src"/empty "$src"/sparse "$src"/dir/* "$src"/dir/sub/* "$src"/dir/sub "$src"/dir "$src"/alice/* "$src"/alice "$src"

"$coop" init --repo "$here/repo" >/dev/null 2>&1
cp "$XDG_CONFIG_HOME/coop/identity.txt" "$here/identity.txt"
XDG_CONFIG_HOME="$work/alice" "$coop" init --repo "$work/alice-repo" >/dev/null 2>&1
cp "$work/alice/coop/identity.txt" "$here/alice.identity"
alice=$(sed -n 's/^# public key: //p' "$here/alice.identity")
export COOP_REPO="$here/repo"
"$coop" member add alice --recipient "$alice" >/dev/null
"$coop" backup --host fixture --tag fixture "$src/empty" "$src/sparse" "$src/dir" >/dev/null
"$coop" backup --host fixture --tenant member/alice "$src/alice" >/dev/null

# expected.txt: every entry of each tenant's latest snapshot: type, mode, size, name (hex when
# not UTF-8), and the SHA-256 of its content (target for symlinks).
{
  for tenant in coop member/alice; do
    echo "tenant $tenant"
    out="$work/out-${tenant//\//-}"
    if [ "$tenant" = coop ]; then id="$here/identity.txt"; else id="$here/alice.identity"; fi
    "$coop" restore latest --tenant "$tenant" --identity-file "$id" --target "$out" >/dev/null
    (cd "$out" && find . -mindepth 1 -print0 | sort -z | while IFS= read -r -d '' p; do
      t=$(stat -c %F "$p"); m=$(stat -c %a "$p"); s=$(stat -c %s "$p")
      case "$t" in
        "regular file"|"regular empty file") h=$(sha256sum < "$p" | cut -c1-64); t=file ;;
        "symbolic link") h=$(readlink "$p"); t=symlink; m=-; s=- ;;
        directory) h=-; t=dir; s=- ;;
        *) h=-; t=other; s=- ;;
      esac
      echo "$t $m $s $(printf '%s' "$p" | od -An -tx1 | tr -d ' \n') $h"
    done)
  done
} > "$here/expected.txt"
rm -rf "$src"
echo "fixture written: $(find "$here/repo" -type f | wc -l) objects, $(du -sh "$here/repo" | cut -f1)"
