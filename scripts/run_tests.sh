#!/usr/bin/env bash
# The test command of README.md: set up the environment (idempotent), then run the whole suite.
# Extra arguments go to pytest (e.g. `bash scripts/run_tests.sh -k fbank`). The suite runs on
# $ASR_KD_TEST_WORKERS pytest-xdist workers (default 2, one per core of the reference machine; 1: no
# workers), a test file per worker at a time (--dist loadfile: a module's fixtures, e.g. the tiny mini
# run, are built once), files in the order tests/conftest.py gives (longest first). The recipe tests spend
# much of their time in single-threaded steps, so two files overlap well on two cores.
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
cd "$repo"
set +e
workers=${ASR_KD_TEST_WORKERS:-2}
xdist=()
[ "$workers" -gt 1 ] && xdist=(-n "$workers" --dist loadfile --no-loadscope-reorder)  # keep tests/conftest.py's order
"$repo/.venv/bin/python" -m pytest "${xdist[@]}" "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "ERROR: pytest collected no tests (exit code 5); treating as failure" >&2
  exit 1
fi
exit "$rc"
