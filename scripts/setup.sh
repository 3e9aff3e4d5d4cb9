#!/usr/bin/env bash
# One command from a fresh clone: installs the dependencies, builds, and runs the main
# job: `rackserve serve` on the bundled tiny model (CPU), answering one curl request.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/install-deps.sh
scripts/build.sh
# The main job: the OpenAI-compatible server on the bundled tiny model, asked once with curl.
model=$(scripts/tiny-model.sh)
build/src/cli/rackserve serve --model "$model" --served-model-name tiny --device cpu --port 8000 &
server=$!
trap 'kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf http://127.0.0.1:8000/health > /dev/null && break; sleep 0.1; done
request='{"model": "tiny", "messages": [{"role": "user", "content": "Hello!"}], "max_tokens": 16}'
echo "curl http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' -d '$request'"
curl -s http://127.0.0.1:8000/v1/chat/completions -H 'Content-Type: application/json' -d "$request"
echo
