#!/usr/bin/env bash
# Creates or refreshes everything asr-kd needs on a fresh machine, then returns.
#   - Debian packages (speech synthesis for the mini corpus, sox/flac, text corpora): installed with
#     apt-get when run as root, otherwise listed with the exact command to run.
#   - A virtual environment in <repo>/.venv with the package installed editable, its test extra, and
#     every Python dependency pinned by constraints.txt.
# Idempotent and cheap on a second run: a stamp records the hash of pyproject.toml + constraints.txt.
# Usage: bash scripts/setup_env.sh [--no-apt]   (or ASR_KD_NO_APT=1 in the environment)
set -euo pipefail

repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
venv="$repo/.venv"
python=${PYTHON:-python3}
no_apt=false
[ "${1:-}" = "--no-apt" ] && no_apt=true
[ "${ASR_KD_NO_APT:-0}" = 1 ] && no_apt=true  # e.g. benchmarks/gpu_check.sh on a machine without a registry

log() { printf '%s [setup_env] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }

deb_packages=(
  sox libsox-fmt-all flac
  flite festival festlex-cmu festvox-kallpc16k festvox-kdlpc16k festvox-us-slt-hts espeak-ng
  fortunes fortunes-min wordnet-base
)

if ! $no_apt; then
  missing=()
  for p in "${deb_packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    if [ "$(id -u)" = 0 ]; then
      log "installing Debian packages: ${missing[*]}"
      export DEBIAN_FRONTEND=noninteractive
      apt-get update -qq
      apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
    else
      log "ERROR: missing Debian packages; run as root:"
      log "  apt-get update && apt-get install -y ${missing[*]}"
      exit 1
    fi
  fi
fi

stamp="$venv/.asr-kd-stamp"
want=$(cat "$repo/pyproject.toml" "$repo/constraints.txt" | sha256sum | cut -d' ' -f1)
if [ -x "$venv/bin/python" ] && [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  exit 0
fi
if [ ! -x "$venv/bin/python" ]; then
  log "creating virtual environment $venv"
  "$python" -m venv "$venv"
fi
log "installing asr-kd and its pinned dependencies into $venv (first time: ~2 minutes, ~5 GB)"
"$venv/bin/python" -m pip install -q --upgrade pip >/dev/null
"$venv/bin/python" -m pip install -q -c "$repo/constraints.txt" -e "$repo[test]"
echo "$want" > "$stamp"
log "environment ready"
