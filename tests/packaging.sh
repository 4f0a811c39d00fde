#!/usr/bin/env bash
# The Debian package, built and used the way an admin would: scripts/package.sh, lintian, then
# on this machine dpkg -i, coop --version, man, bash completion, the units (systemd-analyze
# verify and security), the packaged config (coop config check, before and after the
# repository it names exists), one job under the unit's capabilities, coop config init over
# the packaged example, a reinstall, dpkg -r and dpkg --purge, checking after each that the
# config, keys and repository are where they should be.
#
# It installs a package, so it needs root; elsewhere it is skipped with a note. It refuses to
# run where coop is already installed or /etc/coop, /var/lib/coop or /var/cache/coop exist
# (someone's real setup), and removes everything it created when it ends.
# Called by scripts/test.sh (COOP_TEST_PACKAGING=0 skips it there).
set -euo pipefail
cd "$(dirname "$0")/.."
started=$(date +%s)

if [ "$(id -u)" != 0 ]; then
  echo "== packaging test skipped: it installs the package, so it needs root (run tests/packaging.sh as root)"
  exit 0
fi

fail() {
  echo "packaging: FAIL: $*" >&2
  exit 1
}
step() { echo "-- $*"; }

# Leftovers of an earlier run of this test (it was killed) are this test's to remove; anything
# else is someone's and stays.
marker=/var/tmp/coop-packaging-test
cleanup() {
  if [ -e "$marker" ]; then
    (cd / && dpkg --purge coop) >/dev/null 2>&1 || true
    rm -rf /etc/coop /var/lib/coop /var/cache/coop "$marker"
  fi
}
cleanup
if dpkg-query -W -f='${db:Status-Status}' coop 2>/dev/null | grep -qv '^not-installed$'; then
  fail "the coop package is on this machine (dpkg -l coop); not touching it (COOP_TEST_PACKAGING=0 skips this test)"
fi
for p in /etc/coop /var/lib/coop /var/cache/coop; do
  if [ -e "$p" ]; then
    fail "$p exists: a coop setup is on this machine; not touching it (COOP_TEST_PACKAGING=0 skips this test)"
  fi
done

# Debian's tools for the checks (installed once).
need=()
command -v lintian >/dev/null || need+=(lintian)
command -v systemd-analyze >/dev/null || need+=(systemd)
command -v man >/dev/null || need+=(man-db)
[ -f /usr/share/bash-completion/bash_completion ] || need+=(bash-completion)
command -v dpkg-shlibdeps >/dev/null || need+=(dpkg-dev)
command -v setpriv >/dev/null || need+=(util-linux)
if [ ${#need[@]} -gt 0 ]; then
  step "apt-get install ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  (cd / && { apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null 2>&1 ||
    { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null; }; })
fi

step "scripts/package.sh"
deb=$(realpath "$(scripts/package.sh)")   # absolute: package installs run from /
built=$(date +%s)
echo "   $deb: $(du -k "$deb" | cut -f1) KiB, installed $(dpkg-deb -f "$deb" Installed-Size) KiB"

step "lintian (errors fail; warnings and overrides shown, explained in packaging/debian/lintian-overrides)"
lintian --fail-on error --show-overrides "$deb" 2>&1 | grep -v 'running with root privileges' || fail "lintian found errors"

version=$(sed -n 's/^version = "\(.*\)"$/\1/p' Cargo.toml | head -1)
touch "$marker"
trap cleanup EXIT
step "dpkg -i"
(cd / && dpkg -i "$deb") >/dev/null
for d in /var/lib/coop /var/cache/coop; do
  [ "$(stat -c %a "$d")" = 700 ] || fail "$d is not mode 0700 after install"
done
[ "$(stat -c %a /etc/coop/agent.toml)" = 600 ] || fail "/etc/coop/agent.toml is not 0600"
grep -qx /etc/coop/agent.toml /var/lib/dpkg/info/coop.conffiles || fail "agent.toml is not a conffile"

step "coop --version"
[ "$(coop --version)" = "coop $version" ] || fail "coop --version says '$(coop --version)', not 'coop $version'"

step "man -w coop-backup"
page=$(man -w coop-backup) || {
  grep -rs 'path-exclude.*/usr/share/man' /etc/dpkg/dpkg.cfg.d/ && echo "(dpkg is told not to install man pages here)"
  fail "man -w coop-backup found no page"
}
echo "   $page"
MANWIDTH=1000 man coop-config-init 2>/dev/null | tr -s " \n" "  " | grep -q "print the next three commands" ||
  fail "man coop-config-init does not render"

step "bash completion completes a subcommand"
completed=$(bash -c '
  source /usr/share/bash-completion/bash_completion
  _completion_loader coop
  f=$(complete -p coop | sed -E "s/.* -F ([^ ]+) .*/\1/")
  COMP_WORDS=(coop back); COMP_CWORD=1; COMP_LINE="coop back"; COMP_POINT=${#COMP_LINE}
  "$f" coop back coop
  printf "%s\n" "${COMPREPLY[@]}"')
echo "$completed" | grep -qx backup || fail "bash completion of 'coop back' gave: $completed"
[ -f /usr/share/zsh/vendor-completions/_coop ] && [ -f /usr/share/fish/vendor_completions.d/coop.fish ] ||
  fail "zsh or fish completions are missing"

step "systemd-analyze verify"
units=/usr/lib/systemd/system
systemd-analyze verify "$units/coop-agent.service" "$units/coop-job@.service" "$units/coop-job@.timer" ||
  fail "systemd-analyze verify rejects the units"
sandbox() { awk '/^# Backups yield/ { p = 1 } /^\[Install\]/ { p = 0 } p && NF' "$1"; }
diff <(sandbox "$units/coop-agent.service") <(sandbox "$units/coop-job@.service") >/dev/null ||
  fail "coop-agent.service and coop-job@.service have different sandboxes"
if systemd-analyze security --offline=true "$units/coop-agent.service" >/tmp/coop-security.txt 2>&1; then
  exposure=$(sed -n 's/.*Overall exposure level for coop-agent.service: \([0-9.]*\).*/\1/p' /tmp/coop-security.txt)
  echo "   systemd-analyze security coop-agent.service: $exposure"
  awk -v e="$exposure" 'BEGIN { exit !(e != "" && e <= 3.0) }' || fail "the agent unit's exposure is $exposure (more than 3.0)"
else
  echo "   systemd-analyze security --offline is not available here: $(tail -1 /tmp/coop-security.txt)"
fi

step "coop config check /etc/coop/agent.toml (fresh install: only the repository and identity it names are missing)"
set +e
out=$(coop config check /etc/coop/agent.toml 2>&1)
code=$?
set -e
echo "$out" | sed 's/^/   /'
[ "$code" = 2 ] || fail "config check on the fresh install exited $code"
[ "$(echo "$out" | grep -c ':line ')" = 2 ] &&
  echo "$out" | grep -q '/etc/coop/identity.txt does not exist' &&
  echo "$out" | grep -q 'create it with init first' &&
  echo "$out" | grep -q 'packaged example' ||
  fail "config check on the fresh install reported something else than the missing repository and identity"

step "coop init (the repository and identity the packaged config names), then config check"
coop init --repo /var/lib/coop/repo --identity-file /etc/coop/identity.txt >/dev/null 2>&1
out=$(coop config check /etc/coop/agent.toml) || fail "config check after init: $out"
echo "   $out"
[ "$out" = "/etc/coop/agent.toml: ok (site localhost, 1 job(s), 0 peer(s))" ] || fail "unexpected: $out"

step "the packaged job, as coop-agent.service would run it"
# systemd does not run here, so the sandbox is approximated: the unit's capability bounding
# set and NoNewPrivileges (setpriv), and in a mount namespace (unshare) everything read-only
# but the state and cache directories, with a private /tmp. A write anywhere else fails.
caps=$(sed -n 's/^CapabilityBoundingSet=//p' "$units/coop-agent.service" |
  tr 'A-Z' 'a-z' | sed 's/cap_//g; s/ /,+/g; s/^/-all,+/')
once=(setpriv --no-new-privs --bounding-set "$caps" --inh-caps -all --
  env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin COOP_CACHE_DIR=/var/cache/coop
  nice -n 19 coop agent --config /etc/coop/agent.toml --once etc)
if unshare -m true 2>/dev/null; then
  echo "   capabilities $caps; / read-only but /var/lib/coop, /var/cache/coop; private /tmp"
  unshare -m sh -c 'mount --make-rprivate / &&
    for d in /var/lib/coop /var/cache/coop; do mount --bind "$d" "$d"; done &&
    mount -t tmpfs tmpfs /tmp && mount -o remount,bind,ro / && exec "$@"' sh "${once[@]}" \
    >/dev/null 2>/tmp/coop-once.txt || { cat /tmp/coop-once.txt; fail "the job failed in the sandbox"; }
else
  echo "   capabilities $caps (no mount namespaces here: the file system is not made read-only)"
  "${once[@]}" >/dev/null 2>/tmp/coop-once.txt || { cat /tmp/coop-once.txt; fail "the job failed"; }
fi
n=$(coop --json --repo /var/lib/coop/repo --identity-file /etc/coop/identity.txt --no-cache snapshots |
  grep -c '"hostname": "localhost"') || true
[ "$n" = 1 ] || fail "expected one snapshot of /etc from the job, found $n"

step "coop config init replaces the packaged example (unchanged), keeps anything else"
coop config init --site pkgtest >/dev/null 2>&1 || fail "config init over the packaged example"
grep -q 'name = "pkgtest"' /etc/coop/agent.toml || fail "config init did not write /etc/coop/agent.toml"
coop config check /etc/coop/agent.toml >/dev/null || fail "config check of what config init wrote"
if coop config init --site again >/dev/null 2>&1; then fail "config init overwrote an admin's config"; fi
config_sum=$(sha256sum /etc/coop/agent.toml)
repo_sum=$(cd /var/lib/coop/repo && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)

step "dpkg -i again: the config and repository are untouched"
(cd / && dpkg -i "$deb") >/dev/null
[ "$(sha256sum /etc/coop/agent.toml)" = "$config_sum" ] || fail "reinstalling changed the config"
[ "$(cd /var/lib/coop/repo && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)" = "$repo_sum" ] ||
  fail "reinstalling changed the repository"

step "dpkg -r coop: the config, identity, repository and cache stay"
(cd / && dpkg -r coop) >/dev/null
[ ! -e /usr/bin/coop ] || fail "/usr/bin/coop is still there"
[ "$(sha256sum /etc/coop/agent.toml)" = "$config_sum" ] || fail "dpkg -r changed or removed the config"
[ -f /etc/coop/identity.txt ] || fail "dpkg -r removed the identity"
[ "$(cd /var/lib/coop/repo && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)" = "$repo_sum" ] ||
  fail "dpkg -r changed the repository"
[ -d /var/cache/coop ] || fail "dpkg -r removed the cache"

step "dpkg --purge coop: the repository and identity stay; the conffile and cache go"
(cd / && dpkg --purge coop) >/dev/null 2>&1
[ "$(cd /var/lib/coop/repo && find . -type f -print0 | sort -z | xargs -0 sha256sum | sha256sum)" = "$repo_sum" ] ||
  fail "dpkg --purge changed the repository"
[ -f /etc/coop/identity.txt ] || fail "dpkg --purge removed the identity"
[ ! -e /etc/coop/agent.toml ] || fail "dpkg --purge left the conffile"
[ ! -e /var/cache/coop ] || fail "dpkg --purge left the cache"

ended=$(date +%s)
echo "== packaging: ok ($((built - started)) s to build the package, $((ended - built)) s for the rest)"
