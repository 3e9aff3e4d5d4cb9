#!/usr/bin/env bash
# Runs one e2e suite against a freshly started `rackserve serve` on the bundled tiny model.
#   run_suite.sh RACKSERVE_BINARY SOURCE_DIR WORK_DIR SUITE
# SUITE: sdk | load | overload | tp | anthropic (node test files under tests/e2e), curl
# (curl_checks.sh). tp runs the server with --tp 2 (two CPU ranks); its references stay
# single-rank. anthropic runs tools_chat_template.jinja (the bundled template plus tools and
# tool turns) with the DeepSeek-V3.1 tool-call parser.
# The model directory is assembled in WORK_DIR by scripts/tiny-model.sh from committed
# pieces (tiny random weights + the tokenizer and chat template made by make_tokenizer.py). The server listens on a free port (--port 0)
# with an API key; its log is WORK_DIR/SUITE.server.log.
set -euo pipefail
binary=$1 source_dir=$2 work_dir=$3 suite=$4

model_dir=$("$source_dir/scripts/tiny-model.sh" "$work_dir/model")

export RACKSERVE_API_KEY=e2e-secret-key
export RACKSERVE_MODEL=tiny-dsv3
export RACKSERVE_BINARY=$binary
export RACKSERVE_MODEL_DIR=$model_dir
log=$work_dir/$suite.server.log
config=$work_dir/$suite.serve.yaml
# Flags below override this file; the body limit is only set here (413 test).
cat > "$config" <<YAML
max_request_body_bytes: 1048576
max_running_requests: 96
stats_interval_seconds: 1
YAML

extra_flags=()
# The overload suite needs a queue it can fill: room for 2 unfinished requests, one running.
[ "$suite" = overload ] && extra_flags=(--max-queued-requests 2 --max-running-requests 1)
[ "$suite" = tp ] && extra_flags=(--tp 2)
[ "$suite" = anthropic ] &&
  extra_flags=(--chat-template "$source_dir/tests/e2e/tools_chat_template.jinja" --tool-call-parser deepseek_v31)
: > "$log"  # exists before the background server opens it: the port poll below reads it at once
"$binary" serve --config "$config" --model "$model_dir" --served-model-name "$RACKSERVE_MODEL" --device cpu \
  --threads 2 --port 0 --api-key "$RACKSERVE_API_KEY" "${extra_flags[@]}" > "$log" 2>&1 &
server_pid=$!
cleanup() {
  if kill -0 "$server_pid" 2>/dev/null; then
    kill -TERM "$server_pid"
    wait "$server_pid" || true
  fi
}
trap cleanup EXIT

port=""
for _ in $(seq 1 200); do
  port=$(sed -n 's|.*serving .* on http://[^:]*:\([0-9]*\).*|\1|p' "$log" | head -n1)
  [ -n "$port" ] && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$log"; echo "server exited before listening"; exit 1; }
  sleep 0.1
done
[ -n "$port" ] || { cat "$log"; echo "server did not start"; exit 1; }
export RACKSERVE_URL=http://127.0.0.1:$port

status=0
case "$suite" in
  curl) bash "$source_dir/tests/e2e/curl_checks.sh" || status=$? ;;
  sdk | load | overload | tp | anthropic)
    # ES modules resolve packages next to the importing file: run copies beside node_modules.
    cp -f "$source_dir"/tests/e2e/*.mjs "$work_dir/"
    node --test --test-reporter=spec "$work_dir/$suite.test.mjs" || status=$? ;;
  *) echo "unknown suite $suite"; exit 2 ;;
esac

# The server must have survived everything the suite sent.
if ! kill -0 "$server_pid" 2>/dev/null; then
  echo "FAIL: the server died during the $suite suite"; tail -n 50 "$log"; exit 1
fi
[ "$status" -eq 0 ] || { echo "--- server log (tail) ---"; tail -n 40 "$log"; }
exit "$status"
