#!/usr/bin/env bash
# The LiteLLM tests against the oldest and the newest LiteLLM that tracekit supports.
#
# For each version: a throwaway venv with tracekit (dev extra) and exactly that
# LiteLLM, then tests/test_litellm.py and every tests/test_litellm_*.py.
# Prints version, counts and time per version; exits non-zero if any failed.
#
#   LITELLM_VERSIONS="1.90.7"  test other versions instead (space-separated)
#   LITELLM_VENVS_DIR=DIR      keep the venvs in DIR and reuse them (default: a
#                              temporary directory, removed at the end)
#   PYTHON=python3.11          the interpreter the venvs are made from
set -euo pipefail

# tracekit's supported range (pyproject.toml, README): litellm>=1.83.7,<1.106.
OLDEST_LITELLM=1.83.7
NEWEST_LITELLM=1.105.7

PYTHON=${PYTHON:-python3}
read -r -a versions <<<"${LITELLM_VERSIONS:-$OLDEST_LITELLM $NEWEST_LITELLM}"
# Per version: a hung run is cut off here (pytest-timeout already stops single tests).
RUN_TIMEOUT=${LITELLM_RUN_TIMEOUT:-600}

cd "$(dirname "$0")/.."
root=$PWD

"$PYTHON" -c 'import sys; sys.exit("needs Python 3.11+, found " + sys.version.split()[0]) if sys.version_info < (3, 11) else None'

if [[ -n ${LITELLM_VENVS_DIR:-} ]]; then
    venvs=$(mkdir -p "$LITELLM_VENVS_DIR" && cd "$LITELLM_VENVS_DIR" && pwd)
else
    venvs=$(mktemp -d "${TMPDIR:-/tmp}/tracekit-litellm.XXXXXX")
    trap 'rm -rf "$venvs"' EXIT
fi

shopt -s nullglob
tests=(tests/test_litellm.py tests/test_litellm_*.py)
shopt -u nullglob
if [[ ${#tests[@]} -eq 0 ]]; then
    echo "litellm_versions: no tests/test_litellm*.py found" >&2
    exit 1
fi

# Counts from pytest's closing line, e.g. "3 failed, 52 passed, 1 error in 80.1s".
count() { grep -Eo "[0-9]+ $1" <<<"$2" | tail -n 1 | cut -d' ' -f1 || true; }

summary=()
total_passed=0
total_failed=0
status=0
for version in "${versions[@]}"; do
    started=$SECONDS
    venv=$venvs/litellm-$version
    log=$venvs/litellm-$version.log
    stamp=$venv/.installed
    want="$version $root $(cksum <pyproject.toml)"
    echo "=== litellm $version: installing into $venv"
    if [[ ! -f $stamp || $(cat "$stamp") != "$want" ]]; then
        rm -rf "$venv"
        "$PYTHON" -m venv "$venv"
        # (grep drops pip's notes about index folders this machine lacks)
        if ! "$venv/bin/python" -m pip install --quiet --disable-pip-version-check \
            -e "${root}[dev]" "litellm==$version" 2>&1 |
            { grep -v 'is ignored: it is neither a file nor a directory' || true; }; then
            echo "=== litellm $version: install FAILED" >&2
            summary+=("$(printf '%-10s %-8s %6s %6s %6s %5ss' "$version" INSTALL - - - $((SECONDS - started)))")
            total_failed=$((total_failed + 1))
            status=1
            continue
        fi
        echo "$want" >"$stamp"
    fi
    installed=$("$venv/bin/python" -c 'import importlib.metadata as m; print(m.version("litellm"))')
    if [[ $installed != "$version" ]]; then
        echo "=== litellm $version: got litellm $installed instead" >&2
        exit 1
    fi
    install_time=$((SECONDS - started))

    echo "=== litellm $version: ${tests[*]}"
    rc=0
    timeout --kill-after=30 "$RUN_TIMEOUT" \
        "$venv/bin/python" -m pytest -q -p no:cacheprovider "${tests[@]}" 2>&1 | tee "$log" || rc=$?
    closing=$(grep -E '^[=]* ?[0-9]+ (passed|failed|errors?|skipped|xfailed|xpassed|deselected)' "$log" | tail -n 1 || true)
    passed=$(count passed "$closing")
    failed=$(count failed "$closing")
    errors=$(count 'errors?' "$closing")
    passed=${passed:-0} failed=${failed:-0} errors=${errors:-0}
    if [[ $rc -ne 0 ]]; then
        status=1
        # No closing line (a crash, a timeout) still counts as a failure.
        [[ $((failed + errors)) -eq 0 ]] && failed=1
        result=FAIL
    else
        result=ok
    fi
    total_passed=$((total_passed + passed))
    total_failed=$((total_failed + failed + errors))
    elapsed=$((SECONDS - started))
    summary+=("$(printf '%-10s %-8s %6s %6s %6s %5ss  (install %ss, pytest exit %s)' \
        "$version" "$result" "$passed" "$failed" "$errors" "$elapsed" "$install_time" "$rc")")
done

echo
echo "LiteLLM version matrix (${#tests[@]} test files):"
printf '%-10s %-8s %6s %6s %6s %6s\n' litellm result passed failed errors time
printf '%s\n' "${summary[@]}"
echo "matrix: $total_passed passed, $total_failed failed"
exit "$status"
