#!/usr/bin/env python3
"""`rackserve tokenize --chat` against Python jinja2 in the Hugging Face chat environment.

Assembles a model directory from a committed test tokenizer (tests/data/tokenizers) and
the real GLM-4.7 chat template (../shared/models), renders conversations (tools, thinking
off via --kwargs, no generation prompt, unicode) with jinja2 exactly as transformers does,
and requires the CLI's "prompt" to be byte-identical and its "ids" to equal the plain
`tokenize --text PROMPT --no-special-tokens` of that prompt. Also checks the CLI's errors.

usage: tokenize_chat_test.py RACKSERVE_BINARY REPO_ROOT SHARED_MODELS_DIR
"""
import json
import os
import subprocess
import sys
import tempfile

binary, repo, shared = sys.argv[1:4]
sys.path.insert(0, os.path.join(repo, "tests", "reference"))
import hf_chat_environment  # noqa: E402

template_path = os.path.join(shared, "glm-4.7", "chat_template.jinja")
template = open(template_path, encoding="utf-8").read()
environment = hf_chat_environment.make_environment()
failures = []


def run(*args):
    return subprocess.run([binary, *args], capture_output=True, text=True)


TOOLS = [{"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}},
                                                           "required": ["city"]}}}]
CASES = [
    ("plain", [{"role": "user", "content": "Hello!"}], None, True, {}),
    ("system_multi_turn", [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                           {"role": "assistant", "content": "Hello."}, {"role": "user", "content": "Ça va? 你好 \"q\""}],
     None, True, {}),
    ("tools_and_call", [{"role": "user", "content": "Weather in Paris?"},
                        {"role": "assistant", "content": "",
                         "tool_calls": [{"type": "function",
                                         "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
                        {"role": "tool", "content": "{\"temp\": 21}"}], TOOLS, True, {}),
    ("thinking_off", [{"role": "user", "content": "2+2?"}], None, True, {"enable_thinking": False}),
    ("no_generation_prompt", [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Yo"}],
     None, False, {}),
]

with tempfile.TemporaryDirectory() as model:
    os.symlink(os.path.join(repo, "tests", "data", "tokenizers", "glm_bytelevel", "tokenizer.json"),
               os.path.join(model, "tokenizer.json"))
    os.symlink(template_path, os.path.join(model, "chat_template.jinja"))
    for name, messages, tools, generation_prompt, kwargs in CASES:
        context = {"messages": messages, "tools": tools, "documents": None,
                   "add_generation_prompt": generation_prompt, **kwargs}
        expected = hf_chat_environment.render(environment, template, context)
        if "output" not in expected:
            failures.append(f"{name}: jinja2 failed: {expected}")
            continue
        chat_file = os.path.join(model, f"{name}.json")
        json.dump(messages, open(chat_file, "w", encoding="utf-8"), ensure_ascii=False)
        args = ["tokenize", "--model", model, "--chat", chat_file]
        if tools:
            tools_file = os.path.join(model, f"{name}.tools.json")
            json.dump(tools, open(tools_file, "w", encoding="utf-8"))
            args += ["--tools", tools_file]
        if not generation_prompt:
            args.append("--no-generation-prompt")
        if kwargs:
            args += ["--kwargs", json.dumps(kwargs)]
        result = run(*args)
        if result.returncode != 0:
            failures.append(f"{name}: exit {result.returncode}: {result.stderr.strip()}")
            continue
        output = json.loads(result.stdout)
        if output["prompt"] != expected["output"]:
            failures.append(f"{name}: prompt differs from jinja2:\n  ours  {output['prompt']!r}\n  jinja2 {expected['output']!r}")
        plain = run("tokenize", "--model", model, "--text", expected["output"], "--no-special-tokens")
        if plain.returncode != 0 or json.loads(plain.stdout)["ids"] != output["ids"]:
            failures.append(f"{name}: ids differ from tokenize --text of the same prompt")
        print(f"ok {name}: {len(output['ids'])} ids" if not failures or not failures[-1].startswith(name) else
              f"FAIL {name}")

    # Errors: one line, non-zero exit, never a crash.
    bad_json = os.path.join(model, "bad.json")
    open(bad_json, "w").write("[{")
    for args, needle in [(["--chat", bad_json], "not valid JSON"),
                         (["--chat", bad_json, "--text", "x"], "exactly one of"),
                         (["--text", "x", "--kwargs", "{}"], "need --chat"),
                         (["--chat", os.path.join(model, "plain.json"), "--kwargs", "[1]"], "JSON object")]:
        result = run("tokenize", "--model", model, *args)
        if result.returncode == 0 or result.returncode < 0 or needle not in result.stderr:
            failures.append(f"error case {args}: exit {result.returncode}, stderr {result.stderr.strip()!r}")

for failure in failures:
    print("FAIL", failure)
sys.exit(1 if failures else 0)
