#!/usr/bin/env bash
# Helpers shared by the recipes (source it): timestamped logging, Kaldi-style option parsing and the
# step runner. Whether a step's outputs are up to date is decided by the stage itself (its *.stamp.json:
# options + input digests, see docs/formats.md), so a rerun after a changed option or input rebuilds
# exactly what depends on it; `exp/done/<step>.done` records the wall seconds of the step's last run.

log() {
  # log MESSAGE... -> "2026-11-23 12:00:00 (run.sh:42:main) MESSAGE"
  local fname=${BASH_SOURCE[1]##*/}
  echo -e "$(date '+%Y-%m-%d %H:%M:%S') (${fname}:${BASH_LINENO[0]}:${FUNCNAME[1]}) $*" >&2
}

parse_options() {
  # parse_options "$@": every --some-option VALUE sets the already-defined shell variable some_option.
  # --help prints the variables (with their current values) and the script's header comment.
  while [ $# -gt 0 ]; do
    case "$1" in
      --help|-h)
        sed -n '2,/^$/p' "$0" | sed 's/^# \{0,1\}//'
        echo "Options (current values):"
        for v in $_recipe_options; do printf '  --%s %s\n' "${v//_/-}" "${!v}"; done
        exit 0 ;;
      --*=*)
        local name=${1%%=*}; name=${name#--}; name=${name//-/_}
        _set_option "$name" "${1#*=}"; shift ;;
      --*)
        local name=${1#--}; name=${name//-/_}
        [ $# -ge 2 ] || { echo "$0: option $1 needs a value" >&2; exit 1; }
        _set_option "$name" "$2"; shift 2 ;;
      *) echo "$0: unexpected argument '$1' (see --help)" >&2; exit 1 ;;
    esac
  done
}

_set_option() {
  case " $_recipe_options " in
    *" $1 "*) printf -v "$1" '%s' "$2" ;;
    *) echo "$0: unknown option --${1//_/-} (see --help)" >&2; exit 1 ;;
  esac
}

# run_step STAGE NAME CMD...: run CMD if STAGE is within [stage, stop_stage]; the stages skip what is up to date.
run_step() {
  local st=$1 name=$2; shift 2
  if [ "$st" -lt "$stage" ] || [ "$st" -gt "$stop_stage" ]; then return 0; fi
  local marker="$done_dir/$name.done"
  log "stage $st: $name"
  local t0=$SECONDS
  "$@"
  mkdir -p "$done_dir"
  echo "$((SECONDS - t0))" > "$marker"
  log "stage $st: $name finished in $((SECONDS - t0)) s"
}

# stop_background PID: end a step started with `run_step ... &` (and its processes) if it still runs, e.g.
# when the recipe stops early on an error (an EXIT trap)
stop_background() {
  [ -n "${1:-}" ] || return 0
  pkill -P "$1" 2>/dev/null || true
  kill "$1" 2>/dev/null || true
}

# The GMM aligner's features ($gmm_feats): "fbank" = the DNNs' store data/fbank as it is; "mfcc" = 13-dim MFCC
# with per-speaker mean normalisation in data/mfcc (compute_features_for_gmm, <conf>/mfcc.conf) + deltas and
# delta-deltas added by the aligner, Kaldi's train_mono.sh / train_deltas.sh front end. The labels the aligner
# writes are 1:1 with the frames of either store (same data dir, same frame options).

# compute_features_for_gmm SPLIT CONF_DIR JOBS: data/mfcc/SPLIT when $gmm_feats is mfcc (nothing for fbank)
compute_features_for_gmm() {
  [ "${gmm_feats:-fbank}" = mfcc ] || return 0
  data-prep compute-fbank --data "data/$1" --out "data/mfcc/$1" --jobs "$3" "@$2/mfcc.conf"
}

# compute_features "SPLITS" CONF_DIR JOBS: per split, the DNNs' fbank store data/fbank/SPLIT (CONF_DIR/fbank.conf)
# and the aligner's features beside it (compute_features_for_gmm)
compute_features() {
  local s
  for s in $1; do
    data-prep compute-fbank --data "data/$s" --out "data/fbank/$s" --jobs "$3" "@$2/fbank.conf"
    compute_features_for_gmm "$s" "$2" "$3"
  done
}

# gmm_feature_opts: the `data-prep align` options of $gmm_feats into the caller's array gmm_feat_opts
gmm_feature_opts() {
  case ${gmm_feats:-fbank} in
    mfcc) gmm_feat_opts=(--fbank-dir data/mfcc --deltas 2) ;;
    fbank) gmm_feat_opts=(--fbank-dir data/fbank) ;;
    *) echo "$0: --gmm-feats must be mfcc or fbank, got $gmm_feats" >&2; exit 1 ;;
  esac
}

# gmm_system: the GMM system whose tied states the DNNs learn and whose tree and model the graph and the export
# use, by $align_system, into $gmm_dir (adding its `data-prep align` options to the caller's align_opts):
#   tri   exp/tri   triphones on MFCC + deltas (Kaldi's tri1, train_deltas.sh)
#   tri2  exp/tri2  then LDA+MLLT on spliced MFCC, trained on tri's alignment (train_lda_mllt.sh; --lda-mllt)
#   tri3  exp/tri3  then speaker-adaptive training with per-speaker fMLLR (train_sat.sh + align_fmllr.sh; --sat)
gmm_system() {
  case ${align_system:-tri} in
    tri) ;;
    tri2) align_opts+=(--lda-mllt) ;;
    tri3) align_opts+=(--lda-mllt --sat) ;;
    *) echo "$0: --align-system must be tri, tri2 or tri3, got $align_system" >&2; exit 1 ;;
  esac
  gmm_dir=exp/${align_system:-tri}
}

# The evaluation steps both recipes share. Run from the recipe's output dir (data/ and exp/).

# frame_accuracy_all "SPLITS": frame accuracy of baseline, every teacher, the ensemble and every student
# (asr-kd evaluate finds the models inside these dirs)
frame_accuracy_all() {
  local s
  for s in $1; do
    asr-kd evaluate --models exp/baseline exp/teachers exp/students \
      --feats "data/fbank/$s" --labels "$gmm_dir/ali/$s/pdf.npy" --out "exp/results/frame_acc_$s.json"
  done
}

# nnet_align_step "SPLITS" LANG MODEL_OPTIONS...: every split realigned by a network (e.g. --ensemble exp/teachers)
# on $gmm_dir's HMMs and tree (asr-kd align, Kaldi's steps/nnet3/align.sh) into ${gmm_dir}_nnet, the train split
# with its state counts; with the corpus' reference phone timings (data/corpus/phone_timings) each split's
# boundary agreement goes into ${gmm_dir}_nnet/report.json beside the GMM system's
nnet_align_step() {
  local splits=$1 lang=$2 s
  local -a extra
  shift 2
  for s in $splits; do
    extra=()
    [ "$s" = train ] && extra+=(--counts)
    [ -d data/corpus/phone_timings ] && extra+=(--reference-timings data/corpus/phone_timings)
    asr-kd align "$@" --priors "$gmm_dir/pdf_counts.npy" --feats "data/fbank/$s" --data "data/$s" --lang "$lang" \
      --gmm-dir "$gmm_dir" --out "${gmm_dir}_nnet" "${extra[@]}"
  done
}

# read_model_args LINE: the model options of one `asr-kd list-models` line (NAME ARGS, shell-quoted) into the
# caller's array model_args
read_model_args() {
  eval "model_args=(${1#* })"
}

# decode_all_models "SPLITS" [DECODE OPTIONS...]: every system of the run on every split; the systems
# (baseline, ensemble, every student) and their model options come from `asr-kd list-models`
# ($decode_systems: "all", or "table1" = baseline, ensemble and the student chosen on dev).
# A split written SPLIT:TUNE (e.g. "dev test:dev") takes the LM weight / insertion penalty that was best on
# TUNE's lattices for the same system (--tune-from; TUNE must come earlier), and TUNE reports its own best
# point (--select-best): dev selects, test reports.
decode_all_models() {
  local splits=$1 listing
  local -a list_opts=()
  shift
  [ "${decode_systems:-all}" = table1 ] && list_opts=(--table1)
  listing=$(asr-kd list-models --exp exp "${list_opts[@]}")
  decode_listing "$listing" "$splits" "$@"
}

# decode_listing "LISTING" "SPLITS" [DECODE OPTIONS...]: the systems of LISTING ("NAME MODEL OPTIONS" lines, as
# `asr-kd list-models` prints them) on every split, SPLIT:TUNE as in decode_all_models
decode_listing() {
  local splits=$2 s line split tuners
  local -a systems model_args tune_args
  mapfile -t systems <<< "$1"
  shift 2
  tuners=" "
  for s in $splits; do [[ $s == *:* ]] && tuners="$tuners${s#*:} "; done
  for s in $splits; do
    split=${s%%:*}
    for line in "${systems[@]}"; do
      [ -n "$line" ] || continue
      read_model_args "$line"
      tune_args=()
      if [[ $s == *:* ]]; then
        tune_args=(--tune-from "exp/decode/${line%% *}/${s#*:}")
      elif [[ $tuners == *" $split "* ]]; then
        tune_args=(--select-best)
      fi
      asr-kd decode "${model_args[@]}" --priors "$gmm_dir/pdf_counts.npy" --feats "data/fbank/$split" \
        --data "data/$split" --graph exp/graph --out "exp/decode/${line%% *}/$split" "$@" "${tune_args[@]}"
    done
  done
}

# export_best_student [LANG]: the student chosen on dev (exp/students/best.json, via asr-kd list-models) ->
# exp/export, with the decoding lang dir LANG (default data/lang_test: the graph's vocabulary)
export_best_student() {
  local line lang=${1:-data/lang_test}
  local -a model_args
  line=$(asr-kd list-models --exp exp --best-student)
  read_model_args "$line"
  asr-kd export "${model_args[@]}" --priors "$gmm_dir/pdf_counts.npy" --feats data/fbank/train \
    --tree "$gmm_dir/tree" --final-mdl "$gmm_dir/final.mdl" --lang "$lang" --out exp/export
}

# decode_speed_step SPLIT [DECODE-SPEED OPTIONS...]: RTF and WER per beam of exp/export (the dev-chosen student)
# on SPLIT, at the acoustic scale that was best on that student's dev lattices
decode_speed_step() {
  local split=$1 name
  shift
  name=$(asr-kd list-models --exp exp --best-student)
  asr-kd decode-speed --export exp/export --graph exp/graph --feats "data/fbank/$split" --data "data/$split" \
    --tune-from "exp/decode/${name%% *}/dev" --num-jobs 1 --out "exp/results/decode_speed_$split.json" "$@"
}

# report_step: the report is cheap and always regenerated from whatever the run has produced so far
report_step() {
  if [ 10 -ge "$stage" ] && [ 10 -le "$stop_stage" ]; then
    log "stage 10: report"
    asr-kd report --exp exp --data data --out exp/report.md --alignment-dir "${gmm_dir#exp/}"
  fi
}

# seed_runs "SEEDS" RECIPE FIRST LAST [RECIPE OPTIONS...]: error bars over seeds (the recipes' --seeds).
# This run (seed $seed) is the first; every other seed S reruns the model stages FIRST..LAST of RECIPE in
# seeds/seed_S, whose data/ and exp/{mono,tri,tri2,tri3,graph} are links to this run's (same corpus, features,
# alignment and graph: only the seed of the models differs). Then asr-kd report-seeds writes exp/seeds.md
# (+ .json): every Table 1 cell and the recovered share as mean +- std over the runs.
seed_runs() {
  local seeds=$1 recipe=$2 first=$3 last=$4 s d x
  shift 4
  local -a runs=("$PWD")
  for s in $seeds; do
    [ "$s" = "$seed" ] && continue
    d=seeds/seed_$s
    mkdir -p "$d/exp"
    ln -sfn ../../data "$d/data"
    for x in mono tri tri2 tri3 graph; do
      if [ -e "exp/$x" ]; then ln -sfn "../../../exp/$x" "$d/exp/$x"; fi
    done
    log "seed $s: model stages $first..$last in $d"
    bash "$recipe" "$@" --seed "$s" --stage "$first" --stop-stage "$last" --dir "$PWD/$d"
    runs+=("$PWD/$d")
  done
  asr-kd report-seeds --runs "${runs[@]}" --out exp/seeds.md
}
