#!/usr/bin/env bash
# Helpers shared by the recipes (source it): timestamped logging, Kaldi-style option parsing and
# `.done` markers so a rerun skips finished steps.

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

# run_step STAGE NAME CMD...: run CMD if STAGE is within [stage, stop_stage] and NAME is not done yet.
run_step() {
  local st=$1 name=$2; shift 2
  if [ "$st" -lt "$stage" ] || [ "$st" -gt "$stop_stage" ]; then return 0; fi
  local marker="$done_dir/$name.done"
  if [ -f "$marker" ]; then
    log "stage $st: $name already done ($marker), skipping"
    return 0
  fi
  log "stage $st: $name"
  local t0=$SECONDS
  "$@"
  mkdir -p "$done_dir"
  echo "$((SECONDS - t0))" > "$marker"
  log "stage $st: $name finished in $((SECONDS - t0)) s"
}
