#!/usr/bin/env bash
# The GPU measurements docs/scale.md's cost model lacks, as one short script for a lent GPU machine
# (see docs/benchmarks.md, "Model throughput"). It needs only python3 with torch, torchvision and
# transformers (the device image has them); results go to $OUT (or benchmarks/out/gpu).
#
#   bash benchmarks/gpu_check.sh            # ~5 minutes on one H200
set -euo pipefail
out="${OUT:-benchmarks/out/gpu}"
mkdir -p "$out"
export PYTHONUNBUFFERED=1 PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
py="${PYTHON:-python3}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv > "$out/gpu.txt" || echo "no nvidia-smi" > "$out/gpu.txt"
"$py" -c "import torch, torchvision, transformers; print(torch.__version__, torchvision.__version__, transformers.__version__)" \
  >> "$out/gpu.txt"
cat "$out/gpu.txt"
# 32 VoxCeleb2-length utterances per extractor: enough to fill each extractor's GPU batch several times;
# fp32 (the default, matches the references) and bf16 (autocast, the throughput option) side by side.
# DEVICE=cpu CLIPS=1 ONLY="vggish wav2vec2" DEEP=0 runs the same script here (a check that it works, not a
# measurement).
# The real-size random weights (~1 GB) are written outside $OUT, which comes back to the caller.
work="$(mktemp -d)"
timeout 480 "$py" benchmarks/model_throughput.py --device "${DEVICE:-cuda}" --clips "${CLIPS:-32}" --reps 3 --out "$work" \
  --precision ${PRECISION:-fp32 bf16} \
  ${ONLY:+--only $ONLY} \
  2>&1 | grep -v "Loading weights" | tee "$out/throughput.md"
cp "$work/throughput.json" "$out/"
rm -rf "$work"
# Decoding hidden behind the model on a GPU (the pipeline vs the bare model, both on cuda): needs the
# project's own dependencies (dask, distributed, zarr, av, soxr, ...), which the device image lacks unless
# they are carried as wheels (/work/.library/device/README.md); skipped, saying so, without them.
if [ "${DEEP:-1}" = 1 ] && "$py" -c "import dask, distributed, zarr, av, soxr, typer, opensmile" 2>/dev/null; then
  timeout 420 "$py" benchmarks/deep_bench.py --device "${DEVICE:-cuda}" --reps 2 --clips 48 --w2v-clips 128 \
    --out "$work-deep" 2>&1 | tee "$out/deep.md"
  rm -rf "$work-deep"
else
  echo "deep_bench skipped: DEEP=0, or the project's dependencies are not importable here" | tee "$out/deep.md"
fi
