#!/usr/bin/env bash
# The GPU check: the CUDA paths of asr-kd end to end on one GPU, in <= 8 minutes on one H100, one summary
# table at the end. Parts (each under a time cap; the whole run under $GPU_CHECK_BUDGET s, default 480):
#   env      a venv on the system's torch (--system-site-packages) + the carried wheels in .whl/, asr-kd
#            installed editable (no registry needed); an existing .venv with the Kaldi packages is used as is
#   tests    the GPU-marked unit tests (pytest -m gpu: windows/batches on the device, bf16 training vs
#            float32 on the CPU, torch.compile vs eager, the distillation sweep on the device)
#   bench    benchmarks/bench_train.py --paper-size on cuda: (a) baseline, (b) 10-teacher ensemble,
#            (c) 4-temperature sweep with its shared teacher pass, (d) teacher pass, at batch 256/1024/4096,
#            as model FLOP/s / same-run bf16 matmul FLOP/s
#   loss     the paper-size model (8 x 2560, 14,000 pdfs) trained 200 steps from its init (loss must fall)
#   mini     the tiny mini recipe, stages 5-9 (baseline, teachers, students, frame accuracy, graph, decode)
#            with --device cuda --compile (bf16 autocast is the GPU default) on the carried .gpu_mini/
#            (stages 0-4 run on a CPU by benchmarks/gpu_wheels.sh: the GPU image cannot synthesise speech)
#   compile  (b), (c) and (d) with --compile at batch 1024 (last: it gets what is left of the budget)
# Without a CUDA device every GPU part is skipped with a message (the GPU tests skip themselves), so the
# script also runs on a CPU-only machine. Prepare on a machine with registry access:
#   bash benchmarks/gpu_wheels.sh        # -> .whl/ (cp312 wheels) and .gpu_mini/ (tiny recipe, stages 0-4)
# then on the GPU machine (device tool: carry [".whl", ".gpu_mini"]):
#   bash benchmarks/gpu_check.sh         # logs + bench JSON under $OUT (or /tmp/gpu_check)
set -uo pipefail
repo=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$repo"
out=${OUT:-/tmp/gpu_check}
mkdir -p "$out"
budget=${GPU_CHECK_BUDGET:-480}
start=$SECONDS
export PYTHONUNBUFFERED=1 ASR_KD_NO_APT=1 PYTHONPATH="$repo${PYTHONPATH:+:$PYTHONPATH}"
rows=()
log() { printf '%s [gpu_check] %s\n' "$(date '+%H:%M:%S')" "$*" >&2; }
row() { rows+=("$(printf '%-7s | %-8s | %5s | %s' "$1" "$2" "$3" "$4")"); }
left() {  # the smaller of a part's cap and what is left of the budget (at least 1 s)
  local l=$((budget - (SECONDS - start)))
  [ "$l" -lt 1 ] && l=1
  [ "$l" -lt "$1" ] && echo "$l" || echo "$1"
}

# ---- env
t=$SECONDS
py=.venv/bin/python
if [ -x "$py" ] && "$py" -c "import kaldifst, kaldi_hmm_gmm, torch" 2>/dev/null; then
  env_note="existing .venv"
elif [ -d .whl ]; then
  log "creating .venv on the system torch + carried wheels"
  rm -rf .venv
  python3 -m venv --system-site-packages .venv &&
    # the image's python3 may itself be a venv, whose packages (torch) a child venv does not see: a .pth
    # file puts python3's whole sys.path after the venv's own site-packages
    python3 -c 'import os, sys; print("\n".join(p for p in sys.path if p and os.path.isdir(p)))' \
      > "$(.venv/bin/python -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')/_system_python.pth" &&
    .venv/bin/python -m pip install -q --no-index --no-deps --no-compile --find-links .whl .whl/*.whl &&
    .venv/bin/python -m pip install -q --no-index --no-deps --no-build-isolation -e . &&
    cat pyproject.toml constraints.txt | sha256sum | cut -d' ' -f1 > .venv/.asr-kd-stamp  # setup_env: ready
  env_note="venv from .whl"
else
  log "no .venv with the Kaldi packages and no .whl/: run bash benchmarks/gpu_wheels.sh first"
  env_note="missing"
fi
if ! "$py" -c "import kaldifst, torch" 2>"$out/env.log"; then
  row env FAILED $((SECONDS - t)) "$env_note (see $out/env.log)"
  printf '%s\n' "${rows[@]}"; exit 1
fi
export PATH="$repo/.venv/bin:$PATH"
gpu=$("$py" -c "import torch; print(torch.cuda.get_device_name(0) if torch.cuda.is_available() else '')")
torch_v=$("$py" -c "import torch; print(torch.__version__)")
row env ok $((SECONDS - t)) "$env_note; torch $torch_v; device: ${gpu:-none (CPU only)}"
skip() { row "$1" SKIPPED 0 "no CUDA device: $2 not run"; log "SKIP $1: no CUDA device ($2 needs a GPU)"; }

# ---- tests (they skip themselves without CUDA)
t=$SECONDS
mapfile -t gpu_tests < <(grep -rl "pytest.mark.gpu" tests --include="test_*.py")  # collect only those files
timeout "$(left 120)" "$py" -m pytest -q -rs -m gpu -p no:cacheprovider "${gpu_tests[@]}" 2>&1 | tee "$out/tests.log" | tail -15
rc=${PIPESTATUS[0]}
res=$(grep -E "passed|skipped|failed|error" "$out/tests.log" | tail -1)
row tests "$([ "$rc" = 0 ] && echo ok || echo "FAILED")" $((SECONDS - t)) "pytest -m gpu: $res"

# ---- bench (paper size)
if [ -n "$gpu" ]; then
  t=$SECONDS
  timeout "$(left 170)" "$py" benchmarks/bench_train.py --paper-size --device cuda --batch-sizes 256 1024 4096 \
    --steps 8 --json "$out/bench.json" 2>&1 | tee "$out/bench.log" | grep -v "it/s"
  rc=${PIPESTATUS[0]}
  res=$(awk '$1=="ensemble"||$1=="sweep"{printf "%s@%s %s  ", $1, $2, $7}' "$out/bench.log")
  row bench "$([ "$rc" = 0 ] && echo ok || echo "FAILED")" $((SECONDS - t)) "ratio to bf16 matmul: $res"
else
  skip bench "bench_train.py --paper-size --device cuda"
fi

# ---- loss: the paper-size model trains from its init
if [ -n "$gpu" ]; then
  t=$SECONDS
  timeout "$(left 60)" "$py" benchmarks/bench_train.py --paper-size --device cuda --loss-steps 200 --log-every 50 \
    --batch-sizes 256 2>&1 | tee "$out/loss.log" | grep -v "it/s"
  rc=${PIPESTATUS[0]}
  res=$(awk '$1=="step"{l[++n]=$4} END{if (n) printf "loss %s -> %s over 200 steps", l[1], l[n]}' "$out/loss.log")
  row loss "$([ "$rc" = 0 ] && echo ok || echo "FAILED")" $((SECONDS - t)) "$res"
else
  skip loss "the paper-size loss run on cuda (on a CPU: bench_train.py --paper-size --loss-steps N)"
fi

# ---- mini: the tiny recipe's training + decoding stages on cuda
if [ -n "$gpu" ] && [ -d .gpu_mini/exp/tri ]; then
  t=$SECONDS
  work=$(mktemp -d /tmp/gpu_mini.XXXX)
  cp -a .gpu_mini/. "$work/"
  mkdir -p "$work/conf"
  cp recipes/mini/conf/*.conf "$work/conf/"
  printf -- '--device cuda\n--compile\n' >> "$work/conf/model.conf"
  printf -- '--device cuda\n' >> "$work/conf/decode.conf"
  timeout "$(left 240)" bash recipes/mini/run.sh --size tiny --stage 5 --stop-stage 9 --dir "$work" \
    --conf "$work/conf" > "$out/mini.log" 2>&1
  rc=$?
  res=$("$py" - "$work/exp" <<'EOF'
import json, sys
from pathlib import Path
exp = Path(sys.argv[1])
acc = lambda d: json.loads((d / "eval.json").read_text())["dev"]["frame_acc"] if (d / "eval.json").is_file() else None
parts = [f"baseline dev frame acc {acc(exp / 'baseline'):.1f}%" if acc(exp / "baseline") else "no baseline"]
best = exp / "students" / "best.json"
if best.is_file():
    b = json.loads(best.read_text())
    parts.append(f"best student {b['best']} {b['dev_frame_acc'][b['best']]:.1f}%")
parts.append(f"{len(list(exp.glob('decode/*/*')))} decodes")
print(", ".join(parts))
EOF
)
  row mini "$([ "$rc" = 0 ] && echo ok || echo "FAILED rc=$rc")" $((SECONDS - t)) "$res (log: $out/mini.log)"
elif [ -n "$gpu" ]; then
  row mini SKIPPED 0 "no .gpu_mini/ (run bash benchmarks/gpu_wheels.sh and carry .gpu_mini)"
else
  skip mini "the tiny mini recipe with --device cuda --compile"
fi

# ---- compile: (b), (c) and (d) compiled (last: torch.compile's first call is slow; it gets what is left)
if [ -n "$gpu" ]; then
  t=$SECONDS
  timeout "$(left 100)" "$py" benchmarks/bench_train.py --paper-size --device cuda --compile --cases ensemble sweep teachers \
    --batch-sizes 1024 --steps 8 2>&1 | tee "$out/bench_compile.log" | grep -v "it/s"
  rc=${PIPESTATUS[0]}
  res=$(awk '$1=="ensemble"||$1=="sweep"||$1=="teachers"{printf "%s@%s %s  ", $1, $2, $7}' "$out/bench_compile.log")
  row compile "$([ "$rc" = 0 ] && echo ok || echo "FAILED")" $((SECONDS - t)) "compiled, ratio: $res"
else
  skip compile "bench_train.py --compile"
fi

echo
echo "GPU check: ${gpu:-no CUDA device}, torch $torch_v, $((SECONDS - start)) s (budget $budget s)"
printf '%-7s | %-8s | %5s | %s\n' part status s result
printf '%s\n' "-------------------------------------------------------------------------------------"
printf '%s\n' "${rows[@]}"
printf '%s\n' "${rows[@]}" | grep -q "FAILED" && exit 1
exit 0
