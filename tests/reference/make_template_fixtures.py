#!/usr/bin/env python3
"""Builds the chat-template parity fixtures under tests/data/chat_templates/ with Python
jinja2 in the Hugging Face chat environment (hf_chat_environment.py).

usage: make_template_fixtures.py SHARED_MODELS_DIR [OUT_DIR]
  SHARED_MODELS_DIR  the model reference files (../shared/models); every
                     */chat_template*.jinja and every tokenizer_config*.json with a
                     chat_template field (string or list of {name, template}) is a template
  OUT_DIR            default tests/data/chat_templates next to this script's repo

Writes (never the templates themselves; tests read them from the shared directory):
  conversations.json          the request suite (template_conversations.py)
  templates/<id>.json         per template: where it comes from, its sha256, the special
                              tokens used and, per conversation, the output or the error
  jinja_cases.json            focused engine cases (jinja_feature_cases.py) and results
"""
import glob
import hashlib
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jinja2  # noqa: E402

from hf_chat_environment import FIXED_NOW, make_environment, render  # noqa: E402
from jinja_feature_cases import CASES  # noqa: E402
from template_conversations import CONVERSATIONS  # noqa: E402

# Special tokens passed as bos_token/eos_token where the model directory has no
# tokenizer_config.json giving them (values from the models' published tokenizer configs).
FAMILY_TOKENS = {
    "deepseek": ("<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>"),
    "glm": ("", "<|endoftext|>"),
    "kimi": ("[BOS]", "[EOS]"),
    "minimax": ("]~!b[", "[e~["),
}


def token_text(token):
    if isinstance(token, dict):
        return token.get("content", "")
    return token or ""


def special_tokens(model_dir):
    config_path = os.path.join(model_dir, "tokenizer_config.json")
    if os.path.exists(config_path):
        with open(config_path, encoding="utf-8") as f:
            config = json.load(f)
        return token_text(config.get("bos_token")), token_text(config.get("eos_token"))
    name = os.path.basename(model_dir)
    for family, tokens in FAMILY_TOKENS.items():
        if name.startswith(family):
            return tokens
    return "", ""


def discover_templates(shared):
    """[(id, relative file, field or None, template name or None, source)]."""
    found = []
    for path in sorted(glob.glob(os.path.join(shared, "*", "*.jinja"))):
        rel = os.path.relpath(path, shared)
        with open(path, encoding="utf-8", newline="") as f:
            found.append((rel.replace("/", "__"), rel, None, None, f.read()))
    for path in sorted(glob.glob(os.path.join(shared, "*", "tokenizer_config*.json"))):
        rel = os.path.relpath(path, shared)
        with open(path, encoding="utf-8") as f:
            template = json.load(f).get("chat_template")
        if isinstance(template, str):
            found.append((rel.replace("/", "__"), rel, "chat_template", None, template))
        elif isinstance(template, list):
            for entry in template:
                found.append((rel.replace("/", "__") + "__" + entry["name"], rel, "chat_template", entry["name"],
                              entry["template"]))
    return found


def context_for(conversation, bos, eos):
    context = {
        "messages": conversation["messages"],
        "tools": conversation.get("tools"),
        "documents": None,
        "add_generation_prompt": conversation["add_generation_prompt"],
        "bos_token": bos,
        "eos_token": eos,
    }
    context.update(conversation.get("kwargs", {}))
    return context


def write_json(path, value):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(value, f, ensure_ascii=False, indent=1)
        f.write("\n")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    shared = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(repo, "tests", "data", "chat_templates")
    os.makedirs(os.path.join(out, "templates"), exist_ok=True)
    env = make_environment()
    header = {"jinja2_version": jinja2.__version__, "strftime_now": FIXED_NOW.isoformat()}

    write_json(os.path.join(out, "conversations.json"), dict(header, conversations=CONVERSATIONS))

    summary = []
    for template_id, rel, field, name, source in discover_templates(shared):
        bos, eos = special_tokens(os.path.join(shared, os.path.dirname(rel)))
        results = []
        for conversation in CONVERSATIONS:
            record = render(env, source, context_for(conversation, bos, eos))
            record["conversation"] = conversation["name"]
            results.append(record)
        errors = sum(1 for r in results if "error" in r)
        summary.append(f"{template_id}: {len(results)} conversations, {errors} raise")
        write_json(os.path.join(out, "templates", template_id + ".json"), dict(
            header, file=rel, field=field, name=name,
            sha256=hashlib.sha256(source.encode("utf-8")).hexdigest(),
            bos_token=bos, eos_token=eos, results=results))

    cases = []
    for case_name, template, context in CASES:
        record = render(env, template, context)
        cases.append(dict(name=case_name, template=template, context=context, **record))
    write_json(os.path.join(out, "jinja_cases.json"), dict(header, cases=cases))
    summary.append(f"jinja cases: {len(cases)}")
    print("\n".join(summary))


if __name__ == "__main__":
    main()
