#!/usr/bin/env bash
# Installs the Debian packages named as arguments, non-interactively, only if some are missing:
# when all are installed it returns at once (one dpkg-query), otherwise it runs `apt-get update`
# once and installs the missing ones. Package installs must not start daemons (docker-registry
# would listen on :5000); the tests start their own, so service starts are refused meanwhile.
set -euo pipefail

[ "$#" -gt 0 ] || { echo "usage: $0 PACKAGE..." >&2; exit 2; }

installed=$(dpkg-query -W -f='${Package} ${db:Status-Abbrev}\n' "$@" 2>/dev/null | awk '$2 == "ii" {print $1}' || true)
missing=()
for pkg in "$@"; do
    grep -qxF "$pkg" <<<"$installed" || missing+=("$pkg")
done
if [ "${#missing[@]}" -eq 0 ]; then
    echo "deps: all ${#} Debian packages present"
    exit 0
fi

if [ "$(id -u)" -ne 0 ]; then
    echo "deps: missing ${missing[*]}; run as root (pyrkt needs root anyway)" >&2
    exit 1
fi

policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
    printf '#!/bin/sh\nexit 101\n' >"$policy"
    chmod 755 "$policy"
    made_policy=1
fi
cleanup() { if [ "$made_policy" = 1 ]; then rm -f "$policy"; fi; }
trap cleanup EXIT

echo "deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -q
apt-get install -y -q --no-install-recommends "${missing[@]}"
