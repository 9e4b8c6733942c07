#!/usr/bin/env bash
# `make demo`: build a small image from the host's static busybox, run a two-app pod from it,
# look at it with list/status/logs, then stop and remove everything. Each pyrkt command is
# printed before it runs. Idempotent: whatever an earlier (interrupted) demo left in the demo dir
# is stopped and removed first, and the demo dir is removed again at the end.
#
#   DEMO_DIR   where the image and the data dir go (default /var/tmp/pyrkt-demo)
set -euo pipefail
cd "$(dirname "$0")/.."

REPO=$PWD
DEMO_DIR=${DEMO_DIR:-/var/tmp/pyrkt-demo}
DATA=$DEMO_DIR/data
IMAGE_DIR=$DEMO_DIR/busybox
BIN=$REPO/.venv/bin/pyrkt

[ "$(id -u)" -eq 0 ] || { echo "demo: pyrkt runs pods as root; run this as root" >&2; exit 1; }
[ -x "$BIN" ] || { echo "demo: $BIN is missing; run 'make venv' (or 'make demo')" >&2; exit 1; }

# pyrkt, always on the demo's own data dir
pyrkt() { "$BIN" --dir="$DATA" "$@"; }

# print a command the way a user would type it (quoting only where needed), then run it
step() {
    local word line=""
    for word in "$@"; do
        if [[ $word =~ ^[A-Za-z0-9_./:=@%+,-]+$ ]]; then line+="$word "; else line+="'$word' "; fi
    done
    if [ -t 1 ]; then printf '\n\033[1m$ %s\033[0m\n' "${line% }"; else printf '\n$ %s\n' "${line% }"; fi
    "$@"
}

running() { ! flock --nonblock --shared "$1" true 2>/dev/null; }  # a pod dir's lock is held

# Stop and remove whatever pods the data dir holds, then the demo dir itself.
cleanup() {
    [ -d "$DEMO_DIR" ] || return 0
    local pod i
    for pod in "$DATA"/pods/run/*/; do
        [ -d "$pod" ] && running "$pod" || continue
        pyrkt stop --force "$(basename "$pod")" >/dev/null 2>&1 || true
        for i in 1 2 3 4 5 6 7 8 9 10; do running "$pod" && sleep 0.2 || break; done
        if running "$pod" && [ -s "$pod/pid" ]; then  # stop failed: end pod init by its pid
            kill -KILL "$(cat "$pod/pid")" 2>/dev/null || true
            for i in 1 2 3 4 5 6 7 8 9 10; do running "$pod" && sleep 0.2 || break; done
        fi
    done
    if [ -d "$DATA/pods" ]; then
        pyrkt gc --grace-period=0s >/dev/null 2>&1 || echo "demo: pyrkt gc failed; removing $DATA anyway" >&2
    fi
    # last resort for an interrupted demo: nothing may stay mounted under the demo dir
    local mnt
    for mnt in $(awk -v d="$DEMO_DIR" '$5 == d || index($5, d "/") == 1 {print $5}' /proc/self/mountinfo | sort -r); do
        umount --lazy "$mnt" || true
    done
    rm -rf "$DEMO_DIR"
}

cleanup
trap cleanup EXIT
mkdir -p "$DEMO_DIR"

echo "== building a demo image from $(readlink -f /usr/bin/busybox) into $IMAGE_DIR"
"$REPO/.venv/bin/python" tests/support/images.py oci "$IMAGE_DIR" --tag latest >/dev/null
IMG=oci:$IMAGE_DIR

echo "== the pyrkt data dir of this demo is $DATA (pyrkt --dir=$DATA ...)"
step pyrkt version
step pyrkt fetch "$IMG"
step pyrkt image list

step pyrkt run --detach --net=none \
    "$IMG" --name=web --exec=/bin/sh -- -c 'while true; do date; sleep 1; done' --- \
    "$IMG" --name=worker --exec=/bin/sleep -- 30 | tee "$DEMO_DIR/uuid"
UUID=$(tail -n1 "$DEMO_DIR/uuid")
sleep 2  # let the web app print a few lines

step pyrkt list
step pyrkt status "$UUID"
step pyrkt logs "$UUID" --app=web
step pyrkt stop "$UUID"
step pyrkt status "$UUID"
step pyrkt rm "$UUID"
step pyrkt gc
step pyrkt list

echo
echo "== demo done; removing $DEMO_DIR"
