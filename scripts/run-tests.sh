#!/usr/bin/env bash
# Runs the test suite tier by tier — unit (pure, no root), then integration and e2e (root, real
# kernel) — and ends with a summary of every tier. Arguments go to each pytest run. A tier with
# no test files is reported and skipped (pytest would exit 5); a suite with none at all fails.
set -uo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
tiers=(unit integration e2e)
declare -A result seconds
status=0
found=0

# The unit tier must not need root: run as root, it runs as uid 65534 (nobody), so a unit test
# that silently needs root fails here. Where nobody cannot read this tree or its venv (a clone
# under a private home), it says so and runs as root.
unprivileged=()
if [ "$(id -u)" = 0 ] && command -v setpriv >/dev/null 2>&1; then
    as_nobody=(setpriv --reuid=65534 --regid=65534 --clear-groups env HOME=/tmp)
    if "${as_nobody[@]}" "$PY" -c 'import pyrkt, pytest' >/dev/null 2>&1 && "${as_nobody[@]}" test -r tests/conftest.py; then
        unprivileged=("${as_nobody[@]}")
    else
        echo "run-tests: uid 65534 cannot read $(pwd) or its venv: the unit tier runs as root" >&2
    fi
fi

for tier in "${tiers[@]}"; do
    dir=tests/$tier
    if [ -z "$(find "$dir" -name 'test_*.py' -print -quit 2>/dev/null)" ]; then
        result[$tier]="no tests"
        seconds[$tier]=0
        continue
    fi
    found=1
    echo
    if [ "$tier" = unit ] && [ ${#unprivileged[@]} -gt 0 ]; then
        echo "=== $tier tests ($dir, as uid 65534) ==="
    else
        echo "=== $tier tests ($dir) ==="
    fi
    start=$SECONDS
    runner=()
    [ "$tier" = unit ] && runner=("${unprivileged[@]}")
    # Each tier's temporary files go to a directory of its own, removed after the tier with
    # pyrkt's fd-based remover: tests build trees thousands of levels deep, which pytest's own
    # clean-up of a shared /tmp/pytest-of-<user> cannot remove (it recurses).
    tmp=$(mktemp -d "${TMPDIR:-/tmp}/pyrkt-tests-$tier.XXXXXX")
    [ ${#runner[@]} -gt 0 ] && chown 65534:65534 "$tmp"
    "${runner[@]}" "$PY" -m pytest -p no:cacheprovider -q -ra --basetemp="$tmp/t" "$dir" "$@"
    rc=$?
    "$PY" -c 'import sys; from pyrkt.kernel.trees import remove_tree; remove_tree(sys.argv[1])' "$tmp" \
        || echo "run-tests: could not remove $tmp" >&2
    seconds[$tier]=$((SECONDS - start))
    case $rc in
        0) result[$tier]="passed" ;;
        5) if [ "$#" -gt 0 ]; then result[$tier]="none selected by: $*"
           else result[$tier]="FAILED: no test was collected (exit 5)"; status=1; fi ;;
        *) result[$tier]="FAILED (pytest exit $rc)"; status=1 ;;
    esac
done

if [ "$found" = 0 ]; then
    echo "run-tests: no test files under tests/" >&2
    status=1
fi

echo
echo "=== summary ==="
for tier in "${tiers[@]}"; do
    printf '  %-12s %-40s %4ss\n' "$tier" "${result[$tier]}" "${seconds[$tier]}"
done
if [ "$status" = 0 ]; then echo "  all tiers passed"; else echo "  SOME TIERS FAILED"; fi
exit "$status"
