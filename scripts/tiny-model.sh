#!/usr/bin/env bash
# Assembles the bundled tiny servable model in DIR (default build/tiny-model): the random
# DeepSeek-V3-architecture weights of tests/data/models/dsv3-qlora-yarn-groups plus the tiny
# trained tokenizer and chat template of tests/data/e2e (tests/e2e/make_tokenizer.py).
# Prints DIR. The model is random: its text is gibberish, but every code path is real.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
dir=${1:-$root/build/tiny-model}
mkdir -p "$dir"
for file in config.json generation_config.json model.safetensors; do
  cp -f "$root/tests/data/models/dsv3-qlora-yarn-groups/$file" "$dir/$file"
done
cp -f "$root/tests/data/e2e/tokenizer.json" "$root/tests/data/e2e/tokenizer_config.json" "$dir/"
echo "$dir"
