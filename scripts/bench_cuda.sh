#!/usr/bin/env bash
# The GPU benchmark set: resnet18_c and pyramidnet110_c at batch 128 with sgd,
# sam and gam, each against the PyTorch reference optimisers on the same GPU
# (scripts/bench_step.lua --device cuda; python3 with CUDA PyTorch, or
# $GAM_PYTHON). Extra arguments go to every run (e.g. --steps 20).
#   scripts/bench_cuda.sh [build-dir] [bench_step options...]
set -eu
build=${1:-build}
shift || true
cd "$(dirname "$0")/.."
for model in resnet18_c pyramidnet110_c; do
  for opt in sgd sam gam; do
    echo "== $model $opt"
    "$build/gamlua" scripts/bench_step.lua --device cuda --model "$model" --opt "$opt" --batch 128 "$@"
  done
done
