#!/usr/bin/env bash
# LibriSpeech recipe: the paper's section-4 experiment (baseline, 10-member teacher ensemble, distilled
# students at T in {1,2,5,10}) on LibriSpeech, Kaldi/icefall style. Stages:
#   0  download LibriSpeech parts, the lexicon and the ARPA LM (skipped with --corpus-dir / --lm-dir copies)
#   1  Kaldi data dirs: train (--train-parts), dev-clean/dev-other, test-clean/test-other
#   2  fbank + CMVN feature stores (the DNNs'), and 13-dim MFCC for the aligner (--gmm-feats mfcc, Kaldi's way)
#   3  lang dirs from librispeech-lexicon.txt: data/lang (the transcripts' words, for alignment) and
#      data/lang_test (the whole release lexicon = the LM's vocabulary, for decoding; no transcript words)
#      + the published pruned trigram ARPA LM
#   4  alignment (flat start -> tree -> tri; --align-system tri2 / tri3: then LDA+MLLT / SAT, as Kaldi's
#      tri2b / tri3b; sizes by --align-conf), or --kaldi-ali DIR --kaldi-lang LANG to
#      import a Kaldi GMM system instead (DIR/<part>/ali.*.gz, tree, final.mdl; graph and export use LANG)
#   5  baseline DNN (8 x 2560), 6 teacher ensemble (--num-teachers 10), 7 distillation sweep
#   8  section-6 regularizer (--regularizer true), 9 frame accuracy + graph + decoding with every model,
#  10  report (exp/report.md), 11 export of the best student
#  12  (--nnet-align true) every part realigned by the teachers' ensemble on the GMM system's HMMs (asr-kd align,
#      Kaldi's steps/nnet3/align.sh) into exp/<gmm>_nnet (the training stages keep the GMM's labels)
# Models train on GPUs: --ngpu N runs the training stages through torchrun (DDP, one process per GPU).
# Usage: bash recipes/librispeech/run.sh [--stage N] [--stop-stage M] [--corpus-dir DIR] [--ngpu 8] ...
# See recipes/librispeech/README.md for expected GPU hours and disk.

set -euo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
source "$repo/recipes/shared/common.sh"

stage=0
stop_stage=100
dir=$here                   # where data/ and exp/ go
conf=$here/conf
corpus_dir=""               # existing copy containing LibriSpeech/<part>; empty: download into <dir>/download
lm_dir=""                   # existing copy of librispeech-lexicon.txt + 3-gram.pruned.1e-7.arpa.gz
train_parts="train-clean-100"   # or "train-clean-100 train-clean-360" (460 h), + train-other-500 (960 h)
dev_parts="dev-clean dev-other"
test_parts="test-clean test-other"
kaldi_ali=""                # import a Kaldi GMM system instead of aligning: <kaldi_ali>/<part>/ali.*.gz (+ tree and
                            # final.mdl in the train dir) for train and every dev/test part, e.g. symlinks to
                            # exp/tri6b_ali_<set> (steps/align_fmllr.sh output); needs --kaldi-lang
kaldi_lang=""               # the Kaldi lang dir of that system (data/lang: word-position-dependent phones, topo,
                            # L_disambig.fst); the graph and export then use it (its vocabulary) instead of data/lang_test
gmm_feats=mfcc              # the aligner's features: mfcc = 13-dim MFCC + deltas (data/mfcc, conf/mfcc.conf; Kaldi's
                            # tri1 front end), fbank = the DNNs' 40-dim fbank
align_system=tri            # stage 4's last GMM system, whose tied states the DNNs learn: tri (MFCC + deltas),
                            # tri2 (+ LDA+MLLT), tri3 (+ SAT with per-speaker fMLLR); gmm_system in recipes/shared/common.sh
align_conf=""               # data-prep align options in <conf>; empty: by training-set size (align_100h.conf,
                            # align_460h.conf with train-clean-360, align_960h.conf with train-other-500)
num_teachers=10
ngpu=0                      # >0: training stages run under torchrun with this many processes
jobs=$(nproc)
regularizer=false
nnet_align=false            # true: stage 12 (above)
decode_systems=all          # all: baseline, ensemble and every student; table1: baseline, ensemble, dev-chosen student
rescore_arpa=""             # an ARPA LM to rescore the lattices with (decode --rescore-arpa, e.g. tglarge): composed
                            # as a G.fst (kaldilm, C++), which the decoder processes share copy-on-write; its size is
                            # that of the G.fst (Kaldi keeps fglarge as a const-arpa LM instead, which kaldilm lacks)
_recipe_options="stage stop_stage dir conf corpus_dir lm_dir train_parts dev_parts test_parts kaldi_ali kaldi_lang gmm_feats align_system align_conf num_teachers ngpu jobs regularizer nnet_align decode_systems rescore_arpa"
parse_options "$@"

bash "$repo/scripts/setup_env.sh"
export PATH="$repo/.venv/bin:$PATH"

mkdir -p "$dir" && cd "$dir"
done_dir=exp/done
[ -n "$corpus_dir" ] || corpus_dir=$dir/download
[ -n "$lm_dir" ] || lm_dir=$dir/download/lm
dev_main=${dev_parts%% *}
eval_parts="$dev_parts $test_parts"
if [ -z "$align_conf" ]; then
  case " $train_parts " in
    *" train-other-500 "*) align_conf=align_960h.conf ;;
    *" train-clean-360 "*) align_conf=align_460h.conf ;;
    *) align_conf=align_100h.conf ;;
  esac
fi

train() {  # train SUBCOMMAND ARGS...: one process, or torchrun over --ngpu GPUs
  if [ "$ngpu" -gt 0 ]; then
    torchrun --standalone --nproc-per-node "$ngpu" -m asr_kd.cli "$@"
  else
    asr-kd "$@"
  fi
}

download_all() {
  local parts="" p
  for p in $train_parts $dev_parts $test_parts; do
    [ -d "$corpus_dir/LibriSpeech/$p" ] || parts="$parts $p"
  done
  if [ -n "$parts" ]; then
    data-prep download --out-dir "$corpus_dir" --parts $parts
  fi
  if [ ! -f "$lm_dir/librispeech-lexicon.txt" ] || [ ! -f "$lm_dir/3-gram.pruned.1e-7.arpa.gz" ]; then
    data-prep download --out-dir "$corpus_dir" --parts $dev_parts --lm-dir "$lm_dir" \
      --lm-files librispeech-lexicon.txt 3-gram.pruned.1e-7.arpa.gz
  fi
}
run_step 0 download download_all

make_data_dirs() {
  local p
  for p in $train_parts $dev_parts $test_parts; do
    data-prep make-data-dir --corpus-dir "$corpus_dir/LibriSpeech" --split "$p" --out "data/$p" --jobs "$jobs"
    data-prep validate-data-dir "data/$p"
  done
  # the training set is the union of the train parts (Kaldi's combine_data.sh)
  data-prep combine-data-dirs --out data/train $(printf 'data/%s ' $train_parts)
  data-prep validate-data-dir data/train
}
run_step 1 data_dirs make_data_dirs

# an imported Kaldi system brings its own alignment: no aligner features (data/mfcc) to compute
[ -z "$kaldi_ali" ] || gmm_feats=fbank
run_step 2 features compute_features "train $eval_parts" "$conf" "$jobs"

lang_and_lm() {
  # alignment lang: the transcripts' words (dev/test are force-aligned for their frame labels only)
  data-prep prepare-lang --text data/train/text $(printf 'data/%s/text ' $eval_parts) \
    --lexicon "$lm_dir/librispeech-lexicon.txt" --out data/lang
  # decoding lang: every word of the release lexicon (the LM's vocabulary), nothing from a transcript
  data-prep prepare-lang --lexicon "$lm_dir/librispeech-lexicon.txt" --lexicon-words --out data/lang_test
  asr-kd make-lm --arpa "$lm_dir/3-gram.pruned.1e-7.arpa.gz" --out data/lm/3gram.arpa
}
run_step 3 lang_lm lang_and_lm

gmm_feature_opts
align_opts=()
gmm_system
decode_lang=data/lang_test
if [ -n "$kaldi_ali" ]; then
  [ -n "$kaldi_lang" ] || { echo "$0: --kaldi-ali needs --kaldi-lang (the Kaldi lang dir of the system)" >&2; exit 1; }
  [ "$align_system" = tri ] || { echo "$0: --kaldi-ali imports a finished system (exp/tri); --align-system is for our aligner" >&2; exit 1; }
  decode_lang=exp/tri/lang  # the imported copy of Kaldi's lang dir: the tree's phones, Kaldi's vocabulary
fi
align_or_import() {
  if [ -n "$kaldi_ali" ]; then
    data-prep import-kaldi-system --ali-root "$kaldi_ali" --kaldi-lang "$kaldi_lang" --splits train $eval_parts \
      --fbank-dir data/fbank --out exp/tri
  else
    data-prep align --lang data/lang "${gmm_feat_opts[@]}" --data-dir data --exp exp \
      --splits train $eval_parts --jobs "$jobs" "@$conf/$align_conf" "${align_opts[@]}"
  fi
}
run_step 4 align align_or_import

data_opts=(--train-feats data/fbank/train --train-labels "$gmm_dir/ali/train/pdf.npy"
           --dev-feats "data/fbank/$dev_main" --dev-labels "$gmm_dir/ali/$dev_main/pdf.npy"
           --num-pdfs-file "$gmm_dir/num_pdfs")
run_step 5 baseline train train "${data_opts[@]}" --out exp/baseline "@$conf/model.conf"
run_step 6 teachers train train-ensemble "${data_opts[@]}" --out exp/teachers --num-members "$num_teachers" \
  --seed 100 "@$conf/model.conf"
run_step 7 students train distill "${data_opts[@]}" --teachers exp/teachers --out exp/students --seed 200 \
  "@$conf/distill.conf" "@$conf/model.conf"
if [ "$regularizer" = true ]; then
  run_step 8 regularizer train regularizer "${data_opts[@]}" --teacher exp/baseline \
    --test-feats data/fbank/test-clean --test-labels "$gmm_dir/ali/test-clean/pdf.npy" --out exp/regularizer \
    "@$conf/model.conf" "@$conf/regularizer.conf"
fi

run_step 9 frame_accuracy frame_accuracy_all "$eval_parts"
run_step 9 graph asr-kd make-graph --lang "$decode_lang" --arpa data/lm/3gram.arpa --tree "$gmm_dir/tree" \
  --model "$gmm_dir/final.mdl" --out exp/graph
device=cpu
[ "$ngpu" -gt 0 ] && device=cuda
# dev parts sweep the LM weight / insertion penalty on their lattices; test-X takes dev-X's best point
tune_pairs=$dev_parts
for p in $test_parts; do
  d=dev-${p#test-}
  case " $dev_parts " in *" $d "*) tune_pairs="$tune_pairs $p:$d" ;; *) tune_pairs="$tune_pairs $p:$dev_main" ;; esac
done
rescore_opts=()
[ -n "$rescore_arpa" ] && rescore_opts=(--rescore-arpa "$rescore_arpa")
run_step 9 decode decode_all_models "$tune_pairs" --device "$device" --num-jobs "$jobs" "@$conf/decode.conf" \
  "${rescore_opts[@]}"
report_step
run_step 11 export export_best_student "$decode_lang"
if [ "$nnet_align" = true ]; then  # the alignment's lang dir: data/lang, or the imported Kaldi one
  align_lang=data/lang
  [ -n "$kaldi_ali" ] && align_lang=exp/tri/lang
  run_step 12 nnet_align nnet_align_step "train $eval_parts" "$align_lang" --ensemble exp/teachers
  if [ 12 -ge "$stage" ] && [ 12 -le "$stop_stage" ]; then asr-kd report --exp exp --data data --out exp/report.md --alignment-dir "${gmm_dir#exp/}"; fi
fi

log "librispeech recipe: stages $stage..$stop_stage done"
