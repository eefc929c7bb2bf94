#!/usr/bin/env bash
# The digits recipe: the whole asr-kd chain on REAL speech, the Free Spoken Digit Dataset (5 speakers x 500
# isolated spoken digits, 8 kHz WAV, read in place from --corpus, never copied). Speaker-independent:
# george, lucas, yweweler train; nicolas dev; jackson test (whole speakers held out). Stages:
#   0  Kaldi data dirs data/{train,dev,test} (data-prep prepare-fsdd; bad audio listed in skipped.tsv)
#   1  fbank + CMVN at the native 8 kHz (conf/fbank.conf; the rate is checked, never resampled), and the GMMs'
#      13-dim MFCC with per-speaker mean normalisation (conf/mfcc.conf, --gmm-feats mfcc)
#   2  lang dir (CMUdict, the ten digit words of conf/words.txt) + a digit-loop grammar: a unigram ARPA
#      estimated on the train transcripts only (any sequence of digit words; no dev/test text)
#   3  flat-start alignment mono -> tree -> tri (conf/align.conf) on MFCC + deltas; tied-state labels exp/tri/ali/<split>
#      (--align-system tri2 / tri3: then LDA+MLLT / SAT, labels in exp/tri2 / exp/tri3)
#   4  baseline DNN, 5 teacher ensemble, 6 distilled students (temperature chosen on dev)
#   7  frame accuracy + HCLG graph + decoding/WER on dev and test for every model
#   8  report exp/report.md, 9 export of the best student
# Usage: bash recipes/digits/run.sh [--stage N] [--stop-stage M] [--utts-per-speaker N] [--size default|tiny]
#        [--dir DIR] [--corpus PATH] ...   (--utts-per-speaker 0 = all 500 per speaker)
# A rerun skips every step whose stamp is up to date (see recipes/mini/run.sh).

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/recipes/shared/common.sh"

stage=0
stop_stage=100
size=default          # default: conf/model.conf; tiny: smaller models and budgets (the test suite)
utts_per_speaker=0    # 0 = all 500 recordings per speaker
jobs=2
seed=1
num_teachers=3
gmm_feats=mfcc        # the aligner's features: mfcc = 13-dim MFCC + deltas + delta-deltas in data/mfcc (Kaldi's
                      # train_mono / train_deltas front end, conf/mfcc.conf), fbank = the DNNs' 40-dim fbank
align_system=tri      # stage 3's last GMM system, whose tied states the DNNs learn: tri (MFCC + deltas),
                      # tri2 (+ LDA+MLLT), tri3 (+ SAT with per-speaker fMLLR); gmm_system in recipes/shared/common.sh
corpus=$repo/../shared/data/fsdd
dir=$here
conf=$here/conf
_recipe_options="stage stop_stage size utts_per_speaker jobs seed num_teachers gmm_feats align_system corpus dir conf"
parse_options "$@"
corpus=$(cd "$corpus" && pwd)

bash "$repo/scripts/setup_env.sh"
export PATH="$repo/.venv/bin:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$jobs}

mkdir -p "$dir" && cd "$dir"
done_dir=exp/done
splits="train dev test"

model_opts=() ; align_opts=() ; distill_opts=()
decode_splits="dev test"
if [ "$size" = tiny ]; then
  decode_splits="test"   # the test suite's budget: WER on test only (dev still selects, by frame accuracy)
  distill_opts=(--temperatures 2)
  align_opts=(--num-leaves 160 --tree-min-count 30 --mono-gauss 150 --tri-gauss 800 --mono-iters 8
              --mono-realign 1,2,3,4,6 --tri-iters 4 --tri-realign 2 --lda-iters 4 --lda-realign 2 --mllt-iters 1,3
              --sat-iters 4 --sat-realign 2 --fmllr-iters 1,3)
  model_opts=(--hidden-layers 2 --hidden-dim 96 --epochs 2 --min-epochs 1 --epoch-frames 10000)
fi
gmm_feature_opts
gmm_system
data_opts=(--train-feats data/fbank/train --train-labels "$gmm_dir/ali/train/pdf.npy"
           --dev-feats data/fbank/dev --dev-labels "$gmm_dir/ali/dev/pdf.npy" --num-pdfs-file "$gmm_dir/num_pdfs")

make_data_dirs() {
  data-prep prepare-fsdd --corpus-dir "$corpus" --out data --utts-per-speaker "$utts_per_speaker" --jobs "$jobs"
  for s in $splits; do data-prep validate-data-dir "data/$s"; done
}
run_step 0 data_dirs make_data_dirs

run_step 1 features compute_features "$splits" "$conf" "$jobs"

lang_and_grammar() {
  # the vocabulary is the ten digit words (conf/words.txt); the grammar sees the train transcripts only
  data-prep prepare-lang --text data/train/text --word-list "$conf/words.txt" --out data/lang
  asr-kd make-lm --text data/train/text --kaldi-text --vocab data/lang/words.txt --order 1 --out data/lm/1gram.arpa
}
run_step 2 lang_lm lang_and_grammar

run_step 3 align \
  data-prep align --lang data/lang "${gmm_feat_opts[@]}" --data-dir data --exp exp --splits $splits \
  --jobs "$jobs" --seed "$seed" "@$conf/align.conf" "${align_opts[@]}"

run_step 4 baseline \
  asr-kd train "${data_opts[@]}" --out exp/baseline --seed "$seed" "@$conf/model.conf" "${model_opts[@]}"

run_step 5 teachers \
  asr-kd train-ensemble "${data_opts[@]}" --out exp/teachers --num-members "$num_teachers" \
  --seed $((seed + 100)) "@$conf/model.conf" "${model_opts[@]}"

run_step 6 students \
  asr-kd distill "${data_opts[@]}" --teachers exp/teachers --out exp/students --seed $((seed + 200)) \
  "@$conf/distill.conf" "@$conf/model.conf" "${model_opts[@]}" "${distill_opts[@]}"

run_step 7 frame_accuracy frame_accuracy_all "dev test"
run_step 7 graph \
  asr-kd make-graph --lang data/lang --arpa data/lm/1gram.arpa --tree "$gmm_dir/tree" --model "$gmm_dir/final.mdl" \
  --out exp/graph
run_step 7 decode decode_all_models "$decode_splits" --num-jobs "$jobs" "@$conf/decode.conf"
if [ 8 -ge "$stage" ] && [ 8 -le "$stop_stage" ]; then
  log "stage 8: report"
  asr-kd report --exp exp --data data --out exp/report.md --alignment-dir "${gmm_dir#exp/}"
fi
run_step 9 export export_best_student data/lang  # the digit words are the decoding vocabulary

log "digits recipe: stages $stage..$stop_stage done; report: $dir/exp/report.md"
