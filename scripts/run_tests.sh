#!/usr/bin/env bash
# The test command of README.md: set up the environment (idempotent), then run the whole suite.
# Extra arguments go to pytest (e.g. `bash scripts/run_tests.sh -k fbank`).
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
bash "$repo/scripts/setup_env.sh"
cd "$repo"
set +e
"$repo/.venv/bin/python" -m pytest "$@"
rc=$?
set -e
if [ "$rc" = 5 ]; then
  echo "ERROR: pytest collected no tests (exit code 5); treating as failure" >&2
  exit 1
fi
exit "$rc"
