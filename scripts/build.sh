#!/usr/bin/env bash
# Configures and builds rackserve into build/ (Release). CUDA kernels are compiled when
# nvcc is found (RACKSERVE_CUDA=AUTO), even on machines without a GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc 2>/dev/null || echo 2)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release "$@"
cmake --build build -j "$jobs"
