#!/usr/bin/env bash
# curl against rackserve serve (started by run_suite.sh): SSE framing, /health, auth,
# 413 for a body over the limit, 400 for malformed JSON, error bodies in OpenAI's shape
# (Anthropic's on /v1/messages), and --print-config (flags override the YAML file).
set -uo pipefail
url=$RACKSERVE_URL key=$RACKSERVE_API_KEY model=$RACKSERVE_MODEL
failures=0
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

check() {  # check NAME COMMAND...: runs the command, reports
  local name=$1; shift
  if "$@"; then echo "ok   $name"; else echo "FAIL $name"; failures=$((failures + 1)); fi
}
# status METHOD PATH [curl args...]: prints the HTTP status, body in $tmp/body, headers in $tmp/headers
status() {
  local method=$1 path=$2; shift 2
  curl -s -o "$tmp/body" -D "$tmp/headers" -w '%{http_code}' -X "$method" "$url$path" "$@"
}
is_error_body() {  # the body is {"error": {"message": str, "type": str, ...}}
  python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["error"]; assert isinstance(e["message"],str) and isinstance(e["type"],str)' "$tmp/body"
}
auth=(-H "Authorization: Bearer $key")
json=(-H "Content-Type: application/json")

check "GET /health is 200 without a key" test "$(status GET /health)" = 200
check "GET /v1/models without a key is 401" test "$(status GET /v1/models)" = 401
check "  ... with an OpenAI error body" is_error_body
check "  ... and WWW-Authenticate" grep -qi '^WWW-Authenticate: Bearer' "$tmp/headers"
check "GET /v1/models with a wrong key is 401" test "$(status GET /v1/models -H 'Authorization: Bearer nope')" = 401
check "GET /v1/models with the key is 200" test "$(status GET /v1/models "${auth[@]}")" = 200
check "POST /v1/chat/completions without a key is 401" \
  test "$(status POST /v1/chat/completions "${json[@]}" -d '{"messages":[{"role":"user","content":"hi"}]}')" = 401

check "malformed JSON is 400" test "$(status POST /v1/chat/completions "${auth[@]}" "${json[@]}" -d '{"model": "x", "messages": [')" = 400
check "  ... with an OpenAI error body" is_error_body
check "wrong field type is 400" test "$(status POST /v1/completions "${auth[@]}" "${json[@]}" -d '{"prompt": "hi", "max_tokens": "ten"}')" = 400
check "  ... naming the field" python3 -c 'import json,sys; assert json.load(open(sys.argv[1]))["error"]["param"]=="max_tokens"' "$tmp/body"
check "unknown model is 404" test "$(status POST /v1/completions "${auth[@]}" "${json[@]}" -d '{"model": "gpt-9", "prompt": "hi"}')" = 404
check "unsupported feature is 422" test "$(status POST /v1/completions "${auth[@]}" "${json[@]}" -d '{"prompt": "hi", "echo": true}')" = 422
check "unknown route is 404 with an error body" test "$(status GET /v1/nothing-here "${auth[@]}")" = 404
check "  ... with an OpenAI error body" is_error_body

head -c 2000000 /dev/zero | tr '\0' 'a' > "$tmp/huge.json"
check "a body over max_request_body_bytes is 413" \
  test "$(status POST /v1/completions "${auth[@]}" "${json[@]}" --data-binary @"$tmp/huge.json")" = 413
check "  ... without Expect: 100-continue too" \
  test "$(status POST /v1/completions "${auth[@]}" "${json[@]}" -H 'Expect:' --data-binary @"$tmp/huge.json")" = 413

# SSE framing, byte for byte: every event is "data: <one line>\n\n", the last one [DONE].
curl -s -N -D "$tmp/sse_headers" -o "$tmp/sse" "$url/v1/chat/completions" "${auth[@]}" "${json[@]}" \
  -d "{\"model\": \"$model\", \"messages\": [{\"role\": \"user\", \"content\": \"Hello world\"}], \"max_tokens\": 6,
       \"temperature\": 0, \"ignore_eos\": true, \"stream\": true, \"stream_options\": {\"include_usage\": true}}"
check "SSE content type is text/event-stream" grep -qi '^Content-Type: text/event-stream' "$tmp/sse_headers"
check "SSE events are 'data: {json}' + blank line, ending with [DONE]" python3 - "$tmp/sse" <<'PY'
import json, sys
raw = open(sys.argv[1], "rb").read().decode()
assert raw.endswith("data: [DONE]\n\n"), raw[-80:]
events = raw.split("\n\n")[:-1]
assert all(e.startswith("data: ") and "\n" not in e for e in events), events
payloads = [json.loads(e[6:]) for e in events[:-1]]
assert payloads[0]["choices"][0]["delta"]["role"] == "assistant"
assert all(p["object"] == "chat.completion.chunk" for p in payloads)
assert payloads[-1]["choices"] == [] and payloads[-1]["usage"]["completion_tokens"] == 6
assert all(p["usage"] is None for p in payloads[:-1])
finish = [c["finish_reason"] for p in payloads for c in p["choices"] if c["finish_reason"]]
assert finish == ["length"], finish
PY

# Anthropic's Messages API: x-api-key, its error shape (also where httplib answers itself)
# and its named SSE events, byte for byte.
is_anthropic_error() {  # is_anthropic_error TYPE: the body is {"type": "error", "error": {"type": TYPE, "message": str}}
  python3 -c 'import json,sys; b=json.load(open(sys.argv[1])); assert b["type"]=="error" and b["error"]["type"]==sys.argv[2] and isinstance(b["error"]["message"],str), b' "$tmp/body" "$1"
}
xkey=(-H "x-api-key: $key")
hello="{\"model\": \"$model\", \"max_tokens\": 4, \"temperature\": 0, \"messages\": [{\"role\": \"user\", \"content\": \"Hello world\"}]"
check "POST /v1/messages with x-api-key is 200" test "$(status POST /v1/messages "${xkey[@]}" "${json[@]}" -d "$hello}")" = 200
check "  ... a message" python3 -c 'import json,sys; m=json.load(open(sys.argv[1])); assert m["type"]=="message" and m["usage"]["output_tokens"]>0, m' "$tmp/body"
check "POST /v1/messages with a wrong key is 401" \
  test "$(status POST /v1/messages -H 'x-api-key: nope' "${json[@]}" -d "$hello}")" = 401
check "  ... with an Anthropic error body" is_anthropic_error authentication_error
check "malformed JSON on /v1/messages is 400" test "$(status POST /v1/messages "${xkey[@]}" "${json[@]}" -d '{"model": ')" = 400
check "  ... with an Anthropic error body" is_anthropic_error invalid_request_error
check "an unknown route under /v1/messages is 404" test "$(status POST /v1/messages/batches "${xkey[@]}" "${json[@]}" -d '{}')" = 404
check "  ... with an Anthropic error body" is_anthropic_error not_found_error
check "a body over the limit on /v1/messages is 413" \
  test "$(status POST /v1/messages "${xkey[@]}" "${json[@]}" --data-binary @"$tmp/huge.json")" = 413
check "  ... with an Anthropic error body" is_anthropic_error request_too_large
curl -s -N -D "$tmp/anthropic_headers" -o "$tmp/anthropic_sse" "$url/v1/messages" "${xkey[@]}" "${json[@]}" -d "$hello, \"stream\": true}"
check "Anthropic SSE content type is text/event-stream" grep -qi '^Content-Type: text/event-stream' "$tmp/anthropic_headers"
check "Anthropic SSE events are 'event: TYPE' + 'data: {json}' + blank line, message_start to message_stop" \
  python3 - "$tmp/anthropic_sse" <<'PY'
import json, sys
text = open(sys.argv[1], encoding="utf-8").read()
assert text.endswith("\n\n"), repr(text[-20:])
names = []
for event in text[:-2].split("\n\n"):
    name_line, data_line = event.split("\n")
    assert name_line.startswith("event: ") and data_line.startswith("data: "), repr(event)
    name = name_line[len("event: "):]
    assert json.loads(data_line[len("data: "):])["type"] == name, repr(event)
    names.append(name)
assert names[:3] == ["message_start", "ping", "content_block_start"], names
assert names[-3:] == ["content_block_stop", "message_delta", "message_stop"], names
PY

check "/tokenize and /detokenize round-trip" python3 - "$url" "$key" <<'PY'
import json, sys, urllib.request
url, key = sys.argv[1], sys.argv[2]
def post(path, body):
    request = urllib.request.Request(url + path, json.dumps(body).encode(), {"Authorization": "Bearer " + key, "Content-Type": "application/json"})
    return json.load(urllib.request.urlopen(request))
tokens = post("/tokenize", {"prompt": "Hello world", "add_special_tokens": False})
assert tokens["count"] == len(tokens["tokens"]) > 0
assert post("/detokenize", {"tokens": tokens["tokens"]})["prompt"] == "Hello world"
PY

check "/metrics exposes KV pages and request gauges" bash -c "curl -s '$url/metrics' | grep -q '^rackserve_kv_pages_used{' && curl -s '$url/metrics' | grep -q '^rackserve_requests_running{'"

# --print-config: the YAML file is read, flags override it, the key is masked.
printf 'port: 9999\nmax_running_requests: 7\napi_key: hidden\nmodel: /from/file\n' > "$tmp/serve.yaml"
"$RACKSERVE_BINARY" serve --config "$tmp/serve.yaml" --port 1234 --print-config > "$tmp/printed.yaml"
check "--print-config: flags override the file" grep -qx 'port: 1234' "$tmp/printed.yaml"
check "--print-config: file values kept" grep -qx 'max_running_requests: 7' "$tmp/printed.yaml"
check "--print-config: the API key is masked" bash -c "! grep -q hidden '$tmp/printed.yaml'"
check "configs/serve.example.yaml is a valid config" \
  "$RACKSERVE_BINARY" serve --config "$(dirname "$0")/../../configs/serve.example.yaml" --print-config > /dev/null
printf 'max_runing_requests: 7\n' > "$tmp/typo.yaml"
check "an unknown config key is an error" bash -c "! '$RACKSERVE_BINARY' serve --config '$tmp/typo.yaml' --model x --print-config 2>/dev/null"

check "the server is still healthy" test "$(status GET /health)" = 200
[ "$failures" -eq 0 ] || { echo "$failures curl check(s) failed"; exit 1; }
echo "all curl checks passed"
