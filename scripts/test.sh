#!/usr/bin/env bash
# One command from a fresh clone: installs the dependencies, builds, and runs the whole
# test suite (unit + model + e2e), then the hostile-input tests again under AddressSanitizer.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
jobs=$(nproc 2>/dev/null || echo 2)
ctest --test-dir build -L 'unit|model|e2e' --output-on-failure -j "$jobs"
# When the CUDA kernels were built: their sm_120a code must use tensor cores (SASS, or PTX without cuobjdump).
if [[ -f build/kernels/librackserve_kernels.a ]]; then scripts/check-sass.sh build; fi

# AddressSanitizer + UBSan build of the parsers that read untrusted input.
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DRACKSERVE_SANITIZE=ON -DRACKSERVE_CUDA=OFF
cmake --build build-asan -j "$jobs" --target safetensors_test
ctest --test-dir build-asan -R '^Safetensors' --output-on-failure -j "$jobs"
