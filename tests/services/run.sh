#!/usr/bin/env bash
# The service recipe tests: each installs what it lacks (Debian packages with apt-get, Synapse
# into a venv under ${COOP_TEST_CACHE:-~/.cache/coop-test}), starts the real service on
# 127.0.0.1 on free ports in its own temp dirs, backs it up with its recipe through
# `coop agent --once`, wipes it, restores it as docs/recipes/<service>.md says, checks as the
# users that their data is back, and checks one member's export. Every process and temp dir a
# test started is gone when it ends.
#
#   tests/services/run.sh                 # all of them
#   tests/services/run.sh prosody redmine # some ("recipes": only render and check every recipe)
#
# coop: $COOP_BIN (default: `coop` on PATH). PostgreSQL: the server in COOP_TEST_PG_HOST/PORT/
# PGBIN when set (scripts/test.sh starts one), else each test runs its own cluster.
# COOP_TEST_KEEP=1 keeps a failed test's temp dir (logs, repository) for a look.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
all=(recipes postgresql dovecot prosody redmine synapse)
[ $# -gt 0 ] && tests=("$@") || tests=("${all[@]}")

COOP_BIN=${COOP_BIN:-coop}
if ! coop=$(command -v "$COOP_BIN"); then
  echo "services: coop not found: set COOP_BIN (e.g. COOP_BIN=target/debug/coop)" >&2; exit 1
fi
coop=$(realpath "$coop")
export COOP_BIN="$coop"
if [ "$(id -u)" != 0 ]; then
  echo "services: these tests run services as their own system users and need root" >&2; exit 1
fi
if ! "$coop" recipe list > /dev/null 2>&1; then
  echo "services: $coop has no working \`coop recipe list\`; the tests need \`coop recipe show\`" >&2; exit 1
fi

# Every shipped recipe, tested or not, renders to a job block that `coop config check`
# accepts (variables without a default get a placeholder value; that the services' paths do
# not exist on this machine is the one complaint allowed). A recipe that uses a
# feature coop lacks (marked `# NEEDS:`) is reported, not checked.
check_recipes() {
  local d rc=0 name out vars v sets n=0
  d=$(mktemp -d /tmp/coop-svc-recipes.XXXXXX)
  XDG_CONFIG_HOME="$d/xdg" XDG_CACHE_HOME="$d/cache" "$coop" init --repo "$d/repo" > /dev/null 2>&1 || { rm -rf "$d"; return 1; }
  for f in "$here/../../packaging/recipes/"*.toml; do
    name=$(basename "$f" .toml)
    if grep -q '^# NEEDS:' "$f"; then echo "recipes: $name not checked (it needs$(grep -m1 '^# NEEDS:' "$f" | cut -c9- | cut -d' ' -f1-2), which coop lacks)"; continue; fi
    out=$("$coop" recipe show "$name" 2>&1) || { echo "recipes: $name: coop recipe show failed: $out"; rc=1; continue; }
    vars=$(printf '%s\n' "$out" | grep -o '<FILL IN: [A-Z0-9_]*' | cut -c11- | sort -u)
    sets=()
    for v in $vars; do sets+=(--set "$v=example"); done
    { printf '[site]\nname = "recipes"\nrepo = "%s"\nidentity_file = "%s"\ncache_dir = "%s"\n\n' \
        "$d/repo" "$d/xdg/coop/identity.txt" "$d/agent-cache"
      "$coop" recipe show "$name" "${sets[@]}"; } > "$d/$name.toml" 2>&1 \
      || { echo "recipes: $name: coop recipe show ${sets[*]} failed: $(tail -n 3 "$d/$name.toml")"; rc=1; continue; }
    if grep -q 'FILL IN' "$d/$name.toml"; then echo "recipes: $name: a variable is still unfilled"; rc=1; continue; fi
    # The service is not installed here: its paths not existing is the only acceptable complaint.
    if ! out=$("$coop" config check "$d/$name.toml" 2>&1) \
      && printf '%s\n' "$out" | grep -v -e 'does not exist$' -e '^$' | grep -q .; then
      echo "recipes: $name: config check failed:"; printf '%s\n' "$out" | sed 's/^/    /'; rc=1; continue
    fi
    n=$((n + 1))
  done
  rm -rf "$d"
  [ "$rc" = 0 ] && echo "recipes: $n recipes render and pass config check"
  return "$rc"
}

child=""
trap '[ -n "$child" ] && kill -TERM "$child" 2>/dev/null; wait; exit 130' INT TERM

passed=0 failed=0 failures=() t0=$(date +%s)
for t in "${tests[@]}"; do
  if [ "$t" = recipes ]; then
    if check_recipes; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=(recipes); fi
    continue
  fi
  if [ ! -x "$here/$t.sh" ]; then echo "services: no test $t (have: ${all[*]})"; failed=$((failed + 1)); failures+=("$t"); continue; fi
  "$here/$t.sh" &
  child=$!
  if wait "$child"; then passed=$((passed + 1)); else failed=$((failed + 1)); failures+=("$t"); fi
  child=""
done
echo "services: $(( $(date +%s) - t0 )) s in all${failures:+; failed: ${failures[*]}}"
echo "services: $passed passed, $failed failed"
[ "$failed" = 0 ]
