#!/usr/bin/env bash
# The mini recipe: the whole asr-kd chain on a speech corpus synthesised offline in LibriSpeech layout,
# sized for a CPU-only machine (2 cores). Stages, like icefall's prepare.sh / Kaldi's run.sh:
#   0  synthesise the corpus (train ~2 h, dev/test ~15 min) into data/corpus
#   1  Kaldi data dirs data/{train,dev,test} (+ validation; skipped utterances in skipped.tsv)
#   2  fbank + CMVN feature stores data/fbank/{train,dev,test}
# Usage: bash recipes/mini/run.sh [--stage N] [--stop-stage M] [--size default|tiny] [--jobs 2]
# Outputs go to <dir>/data and <dir>/exp (default dir: recipes/mini); a finished step leaves exp/done/<step>.done
# and is skipped on a rerun (delete the marker to redo it).

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/recipes/shared/common.sh"

stage=0
stop_stage=100
size=default   # default: ~2 h train; tiny: a few utterances (smoke test)
jobs=2
seed=1
dir=$here       # where data/ and exp/ go
_recipe_options="stage stop_stage size jobs seed dir"
parse_options "$@"

bash "$repo/scripts/setup_env.sh"
export PATH="$repo/.venv/bin:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$jobs}

mkdir -p "$dir" && cd "$dir"
done_dir=exp/done
splits="train dev test"

synth_opts=""
[ "$size" = tiny ] && synth_opts="--tiny"

run_step 0 synth_corpus \
  data-prep synth-corpus --out-dir data/corpus --seed "$seed" --jobs "$jobs" $synth_opts

make_data_dirs() {
  for s in $splits; do
    data-prep make-data-dir --corpus-dir data/corpus/LibriSpeech --split "$s" --out "data/$s" --jobs "$jobs"
    data-prep validate-data-dir "data/$s"
  done
}
run_step 1 data_dirs make_data_dirs

compute_features() {
  for s in $splits; do
    data-prep compute-fbank --data "data/$s" --out "data/fbank/$s" --jobs "$jobs"
  done
}
run_step 2 features compute_features

log "mini recipe: stages $stage..$stop_stage done"
