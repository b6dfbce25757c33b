#!/usr/bin/env bash
# Install Debian packages that are missing (run as root), as CI needs them:
#
#   scripts/apt_install.sh PKG...                    # slurm_local.sh uses it for SLURM
#   scripts/apt_install.sh --with-recommends PKG...  # CI's chromium: the package set the browser
#                                                    # tests were run with (115 packages, ~35 s)
#
# Does nothing when every package is installed. Runs apt-get update first only when the lists
# have no candidate for one of them, and once more when an install fails on stale lists; the
# apt log is printed (its tail) only on failure. Prints "installed ... in N s" to stderr.
set -euo pipefail

die() { echo "error: $*" >&2; exit 1; }
recommends=--no-install-recommends
if [ "${1:-}" = --with-recommends ]; then recommends=; shift; fi
[ $# -gt 0 ] || die "usage: $0 PKG..."
missing=()
for p in "$@"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v apt-get >/dev/null || die "apt-get not found: cannot install ${missing[*]}"
[ "$(id -u)" -eq 0 ] || die "installing ${missing[*]} needs root"
export DEBIAN_FRONTEND=noninteractive
t0=$SECONDS updated=0
log=$(mktemp /tmp/apt_install.XXXXXX.log)
apt_get() { apt-get -q "$@" >>"$log" 2>&1 || { tail -n 15 "$log" >&2; return 1; }; }
if [ "$(apt-cache policy "${missing[@]}" 2>/dev/null | grep Candidate | grep -vc '(none)')" -ne ${#missing[@]} ]; then
  apt_get update || die "apt-get update failed (log: $log)"; updated=1
fi
if ! apt_get install -y $recommends "${missing[@]}"; then   # stale lists: update once, retry
  [ $updated -eq 1 ] && die "apt-get install ${missing[*]} failed (log: $log)"
  apt_get update || die "apt-get update failed (log: $log)"
  apt_get install -y $recommends "${missing[@]}" || die "apt-get install ${missing[*]} failed (log: $log)"
fi
rm -f "$log"
echo "installed ${missing[*]} in $((SECONDS - t0)) s" >&2
