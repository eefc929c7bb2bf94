#!/usr/bin/env bash
# Steps beyond the paper (issue 14), optional in the recipes (--beyond true); source after common.sh, run
# from the recipe's output dir. Uses the caller's arrays data_opts, model_opts and the variables conf,
# seed, num_teachers, jobs.
#   codistill_step        n = num_teachers members trained together, each distilling the others -> exp/codistill
#                         (the evaluation also takes any other exp/codistill*/ run, e.g. one across torchrun processes)
#   small_students_step   students 3 x 192 and 3 x 96 of the teacher ensemble (-> exp/students_3x192, _3x96),
#                         3 x 192 also with FitNets hints (exp/fitnets_3x192); a thin-and-deep 6 x 128 student
#                         with hints (exp/fitnets_6x128) and without (exp/students_6x128)
#   beyond_eval_step      frame accuracy on dev/test, acoustic-model speed on the CPU, decoding of dev (tuning) and test

# the student sweep dirs of small_students_step, with their options
_beyond_students() {
  echo "students_3x192 distill --student-hidden-dim 192"
  echo "students_3x96 distill --student-hidden-dim 96"
  echo "fitnets_3x192 fitnets --student-hidden-dim 192 --hint-epochs 1"
  echo "fitnets_6x128 fitnets --student-hidden-layers 6 --student-hidden-dim 128 --hint-epochs 1"
  echo "students_6x128 fitnets --student-hidden-layers 6 --student-hidden-dim 128 --hint-epochs 0"
}

codistill_step() {
  asr-kd codistill "${data_opts[@]}" --out exp/codistill --num-members "$num_teachers" --seed $((1000 * seed + 400)) \
    "@$conf/codistill.conf" "@$conf/model.conf" "${model_opts[@]}" "$@"
}

small_students_step() {
  local name cmd opts
  while read -r name cmd opts; do
    # shellcheck disable=SC2086
    asr-kd "$cmd" "${data_opts[@]}" --teachers exp/teachers --out "exp/$name" --seed $((1000 * seed + 200)) \
      "@$conf/distill.conf" "@$conf/model.conf" "${model_opts[@]}" $opts
  done < <(_beyond_students)
}

# the decodable beyond systems as "NAME --model|--ensemble PATH" lines (the best student of each sweep dir)
_beyond_systems() {
  local name best d
  for d in exp/codistill*/; do  # the recipe's exp/codistill and any other run beside it (exp/codistill_2proc)
    d=${d%/}
    [ -f "$d/codistill.json" ] || continue
    echo "${d#exp/}_member_00 --model $d/member_00/final.pt"
    echo "${d#exp/}_ensemble --ensemble $d"
  done
  while read -r name _; do
    [ -f "exp/$name/best.json" ] || continue
    best=$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["best"])' "exp/$name/best.json")
    echo "${name}_$best --model exp/$name/$best/final.pt"
  done < <(_beyond_students)
}

# beyond_eval_step "EVAL SPLITS" "DECODE SPLITS" [DECODE OPTIONS...]: DECODE SPLITS as in decode_all_models
# ("dev test:dev": dev picks each system's LM weight / penalty, test is decoded at dev's point)
beyond_eval_step() {
  local eval_splits=$1 decode_splits=$2 s name d
  local -a dirs=()
  shift 2
  for d in exp/codistill*/; do [ -f "$d/codistill.json" ] && dirs+=("${d%/}"); done
  while read -r name _; do [ -d "exp/$name" ] && dirs+=("exp/$name"); done < <(_beyond_students)
  [ ${#dirs[@]} -gt 0 ] || return 0
  for s in $eval_splits; do
    asr-kd evaluate --models "${dirs[@]}" --feats "data/fbank/$s" --labels "$gmm_dir/ali/$s/pdf.npy" \
      --out "exp/results/frame_acc_beyond_$s.json"
  done
  # the reference: the teacher-size student chosen on dev (else the baseline)
  local ref=exp/baseline
  [ -f exp/students/best.json ] && \
    ref=exp/students/$(python -c 'import json, sys; print(json.load(open(sys.argv[1]))["best"])' exp/students/best.json)
  asr-kd am-speed --models "$ref" "${dirs[@]}" --feats data/fbank/test --out exp/results/am_speed.json
  decode_listing "$(_beyond_systems)" "$decode_splits" "$@"
}
