#!/usr/bin/env bash
# The mini recipe: the whole asr-kd chain on a speech corpus synthesised offline in LibriSpeech layout,
# sized for a CPU-only machine (2 cores). Stages, like icefall's prepare.sh / Kaldi's run.sh:
#   0  synthesise the corpus (train ~2 h, dev/test ~15 min) into data/corpus
#   1  Kaldi data dirs data/{train,dev,test} (+ validation; skipped utterances in skipped.tsv)
#   2  fbank + CMVN feature stores data/fbank/{train,dev,test} (the DNNs'), and 13-dim MFCC with speaker-mean
#      normalisation in data/mfcc for the aligner (--gmm-feats mfcc, Kaldi's way; fbank: align on data/fbank)
#   3  lang dirs (CMUdict lexicon, L.fst): data/lang for alignment (train/dev/test transcripts: dev/test frame
#      labels come from forced alignment, as in Kaldi) and data/lang_test for decoding (only the words of the
#      LM training text, so dev/test words outside it are OOV errors); trigram LM from the train text only
#   4  flat-start alignment on MFCC + deltas: mono -> decision tree -> tri; tied-state labels
#      exp/tri/ali/<split>/pdf.npy (--align-system tri2: then LDA+MLLT, exp/tri2/ali; tri3: then SAT, exp/tri3/ali)
#   5  baseline DNN (hard labels)
#   6  teacher ensemble (--num-teachers members, different seeds)
#   7  distillation sweep (conf/distill.conf: T in {2, 5}; the paper's {1, 2, 5, 10} does not fit the 30-minute
#      job), one teacher pass per batch shared by the students
#   8  paper section 6: soft targets as a regularizer on 3% of train (--regularizer true; conf/regularizer.conf)
#   9  frame accuracy of every model + HCLG graph (data/lang_test) + lattice decoding of dev and test for
#      Table 1's systems (baseline, ensemble, dev-chosen student; --decode-systems all: every student); the LM
#      weight / insertion penalty is swept on the dev lattices and dev's best point is applied to test;
#      --rescore true: the lattices are also rescored with a 4-gram of the same LM text (Kaldi's lmrescore),
#      re-tuned on dev (about 4 more minutes on 2 cores: test then needs lattices too, not a one-pass search)
#  10  report: exp/report.md (+ plots), Table-1 layout printed at the end
#  11  export the best student for a decoder (TorchScript + ONNX + priors + config) into exp/export
#  12-14 beyond the paper (--beyond true; recipes/shared/beyond.sh): 12 codistillation of --num-teachers
#      members, 13 smaller students (3x192, 3x96) and a thin-and-deep 6x128 one with and without FitNets
#      hints, 14 their frame accuracy, acoustic-model speed and decoding (dev tunes, test at dev's point),
#      then the report again
#  15 error bars (--seeds "1 2 3"): stages 5-10 again for every other seed on the same data, alignment and
#      graph (seeds/seed_S), then exp/seeds.md: every Table 1 cell as mean +- std over the seeds
#  16 (--nnet-align true) every split realigned by the teachers' ensemble on the GMM system's HMMs (asr-kd align,
#      Kaldi's steps/nnet3/align.sh) into exp/<gmm>_nnet, its boundary agreement beside the GMM's; then the report again
# Usage: bash recipes/mini/run.sh [--stage N] [--stop-stage M] [--size default|tiny] [--jobs 2] ...
# Outputs go to <dir>/data and <dir>/exp (default dir: recipes/mini). A rerun calls every stage again and
# each skips what is up to date (its *.stamp.json), so a changed option or input rebuilds what depends on
# it; exp/done/<step>.done holds the wall seconds of the step's last run.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/recipes/shared/common.sh"
source "$repo/recipes/shared/beyond.sh"

stage=0
stop_stage=100
size=default       # default: ~2 h train; tiny: a few utterances per split (smoke test, minutes)
jobs=2
seed=1
num_teachers=3     # ensemble size (paper: 10); 3 keep the whole job within 30 min on 2 cores
regularizer=false  # stage 8 (paper section 6)
decode_systems=table1  # table1: decode baseline, ensemble, dev-chosen student (CPU budget); all: every student too
beyond=false       # stages 12-14 (codistillation, student sizes, FitNets)
seeds=""           # e.g. "1 2 3": stage 15 reruns stages 5-10 for every other seed -> exp/seeds.md (mean +- std)
rescore=false      # true: stage 3 also estimates a 4-gram and stage 9 rescores the lattices with it
gmm_feats=mfcc     # the aligner's features: mfcc = 13-dim MFCC + deltas + delta-deltas (data/mfcc, conf/mfcc.conf;
                   # Kaldi's train_mono / train_deltas front end); fbank = the DNNs' 40-dim store
decode_speed=false # true: stage 11 also measures RTF and WER per beam of the exported student on test
dev_held_out=true  # half of dev's speakers on the test-only voice too, as in test, so that dev (which selects every
                   # model's stop, T and the LM weights) is drawn like test; train and test are the same either way.
                   # false: dev's speakers only on voices heard in training (the default until 2026-11-29; data-prep
                   # synth-corpus --held-out-in-dev, docs/experiments.md)
train_hours=""     # e.g. 10: synthesise that many hours of train speech instead of ~2 h (benchmarks/bench_align_scale.py)
nnet_align=false   # true: stage 16 realigns every split with the teachers' ensemble into exp/tri_nnet (~1 min; not
                   # used for training: baselines retrained on it decoded worse, docs/experiments.md)
align_system=tri   # stage 4's last GMM system, whose tied states the DNNs learn: tri (MFCC + deltas), tri2 (+ LDA+MLLT),
                   # tri3 (+ SAT with per-speaker fMLLR); see gmm_system in recipes/shared/common.sh
# model seeds: baseline $seed, teacher i 1000*seed+100+i, students 1000*seed+200: no two --seeds share a model
dir=$here          # where data/ and exp/ go
conf=$here/conf
_recipe_options="stage stop_stage size jobs seed num_teachers regularizer decode_systems beyond seeds rescore"
_recipe_options+=" decode_speed gmm_feats align_system train_hours nnet_align dev_held_out dir conf"
parse_options "$@"

bash "$repo/scripts/setup_env.sh"
export PATH="$repo/.venv/bin:$PATH"
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-$jobs}

mkdir -p "$dir" && cd "$dir"
done_dir=exp/done
splits="train dev test"

synth_opts=() ; model_opts=() ; align_opts=() ; decode_opts=() ; speed_opts=(--beams 7 9 11 13 --max-active 3000)
if [ "$size" = tiny ]; then
  # the LM text is the tiny train set's own sentences (a small decoding vocabulary and graph)
  synth_opts=(--tiny --train-hours 0.06 --dev-minutes 0.75 --test-minutes 0.75 --num-train-speakers 4 --lm-text used)
  align_opts=(--num-leaves 60 --mono-gauss 150 --tri-gauss 300 --mono-iters 6 --tri-iters 4 --tri-realign 2
              --lda-iters 4 --lda-realign 2 --mllt-iters 1,3
              --sat-iters 4 --sat-realign 2 --fmllr-iters 1,3)
  # every model at batch 256 (conf/teachers.conf's 1,024 would leave the 20k-frame epochs 19 steps)
  model_opts=(--hidden-layers 2 --hidden-dim 64 --epochs 2 --min-epochs 1 --epoch-frames 20000
              --batch-size 256 --lr-scaling none --warmup-steps 0)
  # a narrow search and a 3-point sweep: the tiny models are barely trained, so a wide beam only costs time
  decode_opts=(--beam 7 --max-active 1000 --lattice-beam 2 --sweep-acoustic-scales 0.08 0.14 0.2 --sweep-penalties 0)
  speed_opts=(--beams 5 7 --max-active 1000)
fi
if [ -n "$train_hours" ]; then synth_opts+=(--train-hours "$train_hours"); fi
if [ "$dev_held_out" = true ]; then synth_opts+=(--held-out-in-dev); fi
gmm_feature_opts
gmm_system
data_opts=(--train-feats data/fbank/train --train-labels "$gmm_dir/ali/train/pdf.npy"
           --dev-feats data/fbank/dev --dev-labels "$gmm_dir/ali/dev/pdf.npy" --num-pdfs-file "$gmm_dir/num_pdfs")

run_step 0 synth_corpus \
  data-prep synth-corpus --out-dir data/corpus --seed "$seed" --jobs "$jobs" "${synth_opts[@]}"

make_data_dirs() {
  for s in $splits; do
    data-prep make-data-dir --corpus-dir data/corpus/LibriSpeech --split "$s" --out "data/$s" --jobs "$jobs"
    data-prep validate-data-dir "data/$s"
  done
}
run_step 1 data_dirs make_data_dirs

run_step 2 features compute_features "$splits" "$conf" "$jobs"

lang_and_lm() {
  # alignment lang: every transcript's words (dev/test are force-aligned for their frame labels only)
  data-prep prepare-lang --text data/train/text data/dev/text data/test/text --out data/lang
  # decoding lang and LM: the train-side LM text only (never a dev/test transcript)
  data-prep prepare-lang --plain-text data/corpus/lm_text.txt --out data/lang_test
  asr-kd make-lm --text data/corpus/lm_text.txt --vocab data/lang_test/words.txt --order 3 --out data/lm/3gram.arpa
  if [ "$rescore" = true ]; then  # the rescoring LM: same text and vocabulary, one order more
    asr-kd make-lm --text data/corpus/lm_text.txt --vocab data/lang_test/words.txt --order 4 --out data/lm/4gram.arpa
  fi
}
run_step 3 lang_lm lang_and_lm

run_step 4 align \
  data-prep align --lang data/lang "${gmm_feat_opts[@]}" --data-dir data --exp exp --splits $splits \
  --jobs "$jobs" --seed "$seed" "@$conf/align.conf" "${align_opts[@]}"

# The decoding graph needs only the decoding lang dir, the LM and the tree: like Kaldi recipes with mkgraph.sh,
# it is built in the background (one core) while the DNNs train, and joined before decoding. The baseline, which
# trains while it is built, gets one torch thread: two threads sharing the one free core with the graph spin in
# OpenMP barriers (measured: 270 s for the baseline beside the graph with two threads, 65 s alone).
run_step 9 graph \
  asr-kd make-graph --lang data/lang_test --arpa data/lm/3gram.arpa --tree "$gmm_dir/tree" --model "$gmm_dir/final.mdl" \
  --out exp/graph &
graph_job=$!
trap 'stop_background "$graph_job"' EXIT

OMP_NUM_THREADS=1 run_step 5 baseline \
  asr-kd train "${data_opts[@]}" --out exp/baseline --seed "$seed" "@$conf/model.conf" "${model_opts[@]}"

run_step 6 teachers \
  asr-kd train-ensemble "${data_opts[@]}" --out exp/teachers --num-members "$num_teachers" \
  --seed $((1000 * seed + 100)) "@$conf/model.conf" "@$conf/teachers.conf" "${model_opts[@]}"

run_step 7 students \
  asr-kd distill "${data_opts[@]}" --teachers exp/teachers --out exp/students --seed $((1000 * seed + 200)) \
  "@$conf/distill.conf" "@$conf/model.conf" "${model_opts[@]}"

if [ "$regularizer" = true ]; then
  run_step 8 regularizer \
    asr-kd regularizer "${data_opts[@]}" --teacher exp/baseline \
    --test-feats data/fbank/test --test-labels "$gmm_dir/ali/test/pdf.npy" --out exp/regularizer \
    --seed $((1000 * seed + 300)) "@$conf/model.conf" "@$conf/regularizer.conf" "${model_opts[@]}"
fi

run_step 9 frame_accuracy frame_accuracy_all "dev test"
wait "$graph_job"  # its failure stops the recipe (set -e)
graph_job=""
[ "$rescore" = true ] && decode_opts+=(--rescore-arpa data/lm/4gram.arpa)
run_step 9 decode decode_all_models "dev test:dev" --num-jobs "$jobs" "@$conf/decode.conf" "${decode_opts[@]}"
report_step
run_step 11 export export_best_student
if [ "$decode_speed" = true ]; then
  run_step 11 decode_speed decode_speed_step test "${speed_opts[@]}"
  if [ 11 -ge "$stage" ] && [ 11 -le "$stop_stage" ]; then asr-kd report --exp exp --data data --out exp/report.md --alignment-dir "${gmm_dir#exp/}"; fi
fi

if [ "$beyond" = true ]; then
  codistill_opts=() ; [ "$size" = tiny ] && codistill_opts=(--burn-in-steps 20)
  run_step 12 codistill codistill_step "${codistill_opts[@]}"
  run_step 13 small_students small_students_step
  run_step 14 beyond_eval beyond_eval_step "dev test" "dev test:dev" --num-jobs "$jobs" "@$conf/decode.conf" "${decode_opts[@]}"
  if [ 14 -ge "$stage" ] && [ 14 -le "$stop_stage" ]; then asr-kd report --exp exp --data data --out exp/report.md --alignment-dir "${gmm_dir#exp/}"; fi
fi

if [ -n "$seeds" ]; then
  run_step 15 seeds seed_runs "$seeds" "$here/run.sh" 5 10 --size "$size" --jobs "$jobs" \
    --num-teachers "$num_teachers" --regularizer "$regularizer" --decode-systems "$decode_systems" --rescore "$rescore" \
    --align-system "$align_system" --conf "$conf"
fi

if [ "$nnet_align" = true ]; then
  run_step 16 nnet_align nnet_align_step "$splits" data/lang --ensemble exp/teachers
  if [ 16 -ge "$stage" ] && [ 16 -le "$stop_stage" ]; then asr-kd report --exp exp --data data --out exp/report.md --alignment-dir "${gmm_dir#exp/}"; fi
fi

log "mini recipe: stages $stage..$stop_stage done; report: $dir/exp/report.md"
