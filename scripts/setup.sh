#!/usr/bin/env bash
# One command from a fresh clone: installs the dependencies, builds, and runs the main
# job on the bundled tiny model (a greedy continuation through the KV cache, CPU).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
model=tests/data/models/dsv3-qlora-yarn-groups
echo "rackserve generate --model $model --tokens 17,4,123,99,7 --max-tokens 16"
build/src/cli/rackserve generate --model "$model" --tokens 17,4,123,99,7 --max-tokens 16
