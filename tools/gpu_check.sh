#!/usr/bin/env bash
# The GPU check of issue 10 (part 7): the bench cases on --device cuda, the CPU figures beside them.
#
#   tools/gpu_check.sh                      on a GPU machine (about 5-6 minutes at SUBSET=6000)
#   tools/gpu_check.sh --cpu-only           no GPU: the CPU half only (proves the script end to end)
#
# Steps: (a) nvidia-smi and torch's CUDA view; (b) the CUDA tests (tests/test_device.py: records on
# cuda equal the CPU's bit for bit); (c) `python -m nps bench` on cuda, then the same on cpu, on a
# stratified MNIST subset; (d) a side-by-side table of ms/image from the two JSON files.
# Everything goes under $OUT (default ./gpu_out): gpu_check.log, bench_cuda.json, bench_cpu.json, table.txt.
#
# Environment (defaults in brackets):
#   OUT [./gpu_out]     SUBSET [6000]: stratified MNIST subset; "all" = 60k (its window index takes
#                       many minutes to build the first time, then it is cached in cache/)
#   CASES [a,loc-exact,loc-approx]  BATCHES [4,64]  N_A [64]  N_B [8]  REPEATS [3]  THREADS [1]
#   CORPUS [mnist]      PYTHON [.venv/bin/python if present, else python3]
#   LIMIT_S [540]: the whole script's time limit (a device command may run 600 s)
#   CPU_ONLY [0]: 1 is --cpu-only
set -euo pipefail

if [[ -z "${GPU_CHECK_INNER:-}" ]]; then  # one total time limit over every step
    export GPU_CHECK_INNER=1
    exec timeout --kill-after=10 "${LIMIT_S:-540}" bash "$0" "$@"
fi

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
CPU_ONLY="${CPU_ONLY:-0}"
for arg in "$@"; do
    case "$arg" in
        --cpu-only) CPU_ONLY=1 ;;
        -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
        *) echo "error: unknown argument '$arg'; use --cpu-only or none." >&2; exit 2 ;;
    esac
done
OUT="${OUT:-./gpu_out}"
SUBSET="${SUBSET:-6000}"
CASES="${CASES:-a,loc-exact,loc-approx}"
BATCHES="${BATCHES:-4,64}"
N_A="${N_A:-64}"
N_B="${N_B:-8}"
REPEATS="${REPEATS:-3}"
THREADS="${THREADS:-1}"
CORPUS="${CORPUS:-mnist}"
if [[ -z "${PYTHON:-}" ]]; then
    if [[ -x .venv/bin/python ]]; then PYTHON=.venv/bin/python; else PYTHON=python3; fi
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
mkdir -p "$OUT"
exec > >(tee -a "$OUT/gpu_check.log") 2>&1

echo "== gpu_check $(date -u +%FT%TZ) on $(hostname), $(nproc) cores; load: $(uptime)"
echo "   subset=$SUBSET cases=$CASES batches=$BATCHES n_a=$N_A n_b=$N_B repeats=$REPEATS threads=$THREADS"
echo "   python=$PYTHON cpu_only=$CPU_ONLY out=$OUT"

echo "== (a) the GPU"
if [[ "$CPU_ONLY" == 1 ]]; then
    echo "cpu-only: nvidia-smi and the CUDA runs are skipped"
else
    nvidia-smi || { echo "error: nvidia-smi failed; run on a GPU machine or pass --cpu-only." >&2; exit 2; }
fi
"$PYTHON" - "$CPU_ONLY" <<'PY'
import sys

import torch

print(f"torch {torch.__version__}, built for CUDA {torch.version.cuda}, cuda available: {torch.cuda.is_available()}")
for i in range(torch.cuda.device_count()):
    p = torch.cuda.get_device_properties(i)
    print(f"  cuda:{i} {p.name}, {p.total_memory / 2**30:.0f} GiB, compute capability {p.major}.{p.minor}")
if sys.argv[1] != "1" and not torch.cuda.is_available():
    sys.exit("error: torch sees no CUDA GPU; install a CUDA build of torch or pass --cpu-only.")
PY

status=0
echo "== (b) the CUDA tests (tests/test_device.py; they skip without a GPU)"
"$PYTHON" -m pytest -q -rs -p no:cacheprovider tests/test_device.py || status=1

subset_flag=()
[[ "$SUBSET" != all ]] && subset_flag=(--subset "$SUBSET")
bench() {  # $1: the device
    echo "== (c) bench on $1 ($(uptime))"
    "$PYTHON" -m nps bench --corpus "$CORPUS" "${subset_flag[@]}" --cases "$CASES" --batches "$BATCHES" \
        --n-a "$N_A" --n-b "$N_B" --repeats "$REPEATS" --threads "$THREADS" --device "$1" \
        --json "$OUT/bench_$1.json" || status=1
}
[[ "$CPU_ONLY" == 1 ]] || bench cuda
bench cpu

echo "== (d) cuda against cpu, ms/image (median of the interleaved rounds)"
"$PYTHON" - "$OUT/bench_cuda.json" "$OUT/bench_cpu.json" <<'PY' | tee "$OUT/table.txt"
import json
import sys
from pathlib import Path

runs = {dev: json.loads(Path(p).read_text()) if Path(p).is_file() else {} for dev, p in zip(("cuda", "cpu"), sys.argv[1:])}


def cell(r):
    if not r:
        return "-"
    return "error" if "error" in r else f"{r['ms_per_image']:.1f}"


keys = sorted({k for res in runs.values() for k, v in res.items() if isinstance(v, dict)})
print(f"{'case@batch':18s} {'cuda ms':>10s} {'cpu ms':>10s} {'cpu/cuda':>9s}  recall cuda / cpu  peak RSS MB cuda / cpu")
for k in keys:
    a, b = runs["cuda"].get(k, {}), runs["cpu"].get(k, {})
    ratio = f"{b['ms_per_image'] / a['ms_per_image']:.2f}x" if "ms_per_image" in a and "ms_per_image" in b else "-"
    recall = " / ".join(f"{r['recall']:.4f}" if "recall" in r else "-" for r in (a, b))
    rss = " / ".join(f"{r['peak_rss_mb']:.0f}" if "peak_rss_mb" in r else "-" for r in (a, b))
    print(f"{k:18s} {cell(a):>10s} {cell(b):>10s} {ratio:>9s}  {recall:17s}  {rss}")
for dev, res in runs.items():
    if res:
        print(f"{dev}: device {res.get('device')}{', ' + res['gpu'] if res.get('gpu') else ''}, "
              f"load at the end {res.get('uptime_load')}")
PY
echo "== done, status $status; load: $(uptime)"
exit "$status"
