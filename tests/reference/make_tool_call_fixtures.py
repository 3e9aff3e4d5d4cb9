#!/usr/bin/env python3
"""Builds the tool-call parser fixtures under tests/data/tool_calls/: for every chat template
and every assistant message with tool_calls in the conversation suite, the text the model
generates for that message, as the official template renders it with Python jinja2 in the
Hugging Face chat environment, and the calls and content it stands for.

usage: python3 tests/reference/make_tool_call_fixtures.py ../shared/models [OUT_DIR]
  (run from the repository root; OUT_DIR defaults to tests/data/tool_calls)

How a record is made (conversation cut at the assistant message M):
  P  the messages before M rendered with add_generation_prompt=True (the prompt)
  F  the messages up to M rendered with add_generation_prompt=False
  G  F[len(P):] without the end-of-turn token the model stops on (END_OF_TURN)
Attempts, first that works wins (the record says which):
  - arguments as the conversation gives them, then in the other form (JSON text for a
    template that concatenates strings, objects for one that iterates .items());
  - the request's chat_template_kwargs, then thinking switched off (a template such as
    GLM-4.7 opens <think> in P but renders "</think>" for an answer without reasoning);
  - when P ends with an opened "<think>" that F does not contain because the template
    drops reasoning from history (DeepSeek-R1, MiniMax-M2): G is the message's reasoning,
    "</think>", then F after P without that opener (unless F has a reasoning block there).
An attempt fails when a render raises, F does not start with P, or G lacks a call's name
or argument key (the template drops tool calls, e.g. Kimi-K2's first template). Kimi-K2
templates render a call's id verbatim where the model writes "functions.NAME:INDEX", so
for them call ids are rewritten to that form (INDEX counts calls over the conversation).

Writes tool_calls/<template id>.json per template (ids as in tests/data/chat_templates):
  file, field, name   where the template comes from (relative to SHARED_MODELS_DIR)
  format              the --tool-call-parser name the model family uses
  records[]           conversation, message (index of M), text (G), answer_start (offset
                      in G after "</think>" and the whitespace after it, where the answer
                      the tool-call parser sees begins; 0 without reasoning), tools,
                      content, calls [{name, arguments (object), id (Kimi only)}], attempt
  skipped[]           conversation, message and the distinct reasons the attempts failed
"""
import copy
import json
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jinja2  # noqa: E402

from hf_chat_environment import make_environment, render  # noqa: E402
from make_template_fixtures import context_for, discover_templates, special_tokens, write_json  # noqa: E402
from template_conversations import CONVERSATIONS  # noqa: E402

# Model directory prefix -> tool-call format (first match wins).
FORMATS = [
    ("deepseek-v3.1", "deepseek_v31"),
    ("deepseek-v3.2", "deepseek_v31"),
    ("deepseek", "deepseek_v3"),
    ("kimi", "kimi_k2"),
    ("glm", "glm45"),
    ("minimax", "minimax_m2"),
]

# The token each family stops on at the end of an assistant turn. GLM stops on the next
# role token (<|observation|>, <|user|>), which F does not contain.
END_OF_TURN = {
    "deepseek": ["<｜end▁of▁sentence｜>"],
    "kimi": ["<|im_end|>"],
    "glm": ["<|observation|>", "<|user|>", "<|endoftext|>"],
    "minimax": ["[e~["],
}

THINKING_OFF = {"enable_thinking": False, "thinking": False}
REASONING_OPENER = re.compile(r"<think>\n?$")
THINK_END = "</think>"


def format_of(model_dir):
    return next(fmt for prefix, fmt in FORMATS if model_dir.startswith(prefix))


def family_of(model_dir):
    return next(family for family in END_OF_TURN if model_dir.startswith(family))


def arguments_object(arguments):
    return json.loads(arguments) if isinstance(arguments, str) else arguments


def with_kimi_ids(messages):
    """Call ids (and the tool results' tool_call_id) as a Kimi-K2 model writes them."""
    messages = copy.deepcopy(messages)
    renamed = {}
    for message in messages:
        for call in message.get("tool_calls") or []:
            new_id = f"functions.{call['function']['name']}:{len(renamed)}"
            renamed[call.get("id")] = new_id
            call["id"] = new_id
    for message in messages:
        if message.get("role") == "tool" and message.get("tool_call_id") in renamed:
            message["tool_call_id"] = renamed[message["tool_call_id"]]
    return messages


def with_arguments_converted(messages):
    """Every tool call's arguments in the other form: JSON text <-> object."""
    messages = copy.deepcopy(messages)
    for message in messages:
        for call in message.get("tool_calls") or []:
            arguments = call["function"]["arguments"]
            call["function"]["arguments"] = (json.loads(arguments) if isinstance(arguments, str)
                                             else json.dumps(arguments, ensure_ascii=False))
    return messages


def strip_end_of_turn(text, family):
    trimmed = text.rstrip()
    for marker in END_OF_TURN[family]:
        if trimmed.endswith(marker):
            return trimmed[:-len(marker)]
    return text


def answer_start(text):
    at = text.find(THINK_END)
    if at < 0:
        return 0
    at += len(THINK_END)
    while at < len(text) and text[at].isspace():
        at += 1
    return at


def generated_text(env, source, conversation, messages, k, kwargs, tokens, reopen):
    """(G, None) or (None, reason) for the assistant message messages[k]."""
    bos, eos = tokens
    request = dict(conversation, kwargs=kwargs)
    prompt = render(env, source, context_for(dict(request, messages=messages[:k], add_generation_prompt=True),
                                             bos, eos))
    full = render(env, source, context_for(dict(request, messages=messages[:k + 1], add_generation_prompt=False),
                                           bos, eos))
    for rendered in (prompt, full):
        if "error" in rendered:
            return None, f"{rendered['error']['type']}: {rendered['error']['message']}"
    prompt, full = prompt["output"], full["output"]
    if full.startswith(prompt):
        return full[len(prompt):], None
    opener = REASONING_OPENER.search(prompt)
    answer = full[opener.start():] if opener and full.startswith(prompt[:opener.start()]) else None
    if reopen and answer is not None and not answer.startswith(("<think>", THINK_END)):
        reasoning = messages[k].get("reasoning_content") or ""
        return reasoning + THINK_END + answer, None
    return None, "F does not start with P"


def markup_problem(answer, message, calls):
    """Why the answer text cannot stand for the message, or None."""
    for call in calls:
        if call["name"] not in answer:
            return f"G lacks the call {call['name']} (the template drops tool calls)"
        for key in call["arguments"]:
            if key not in answer:
                return f"G lacks the argument {key} of {call['name']} (the template drops arguments)"
    if message.get("content") is None and answer.lstrip().startswith("None"):
        return "the template renders content None as the text 'None'"
    return None


def with_content(messages, k, content):
    messages = copy.deepcopy(messages)
    messages[k]["content"] = content
    return messages


def request_variants(messages, k, kwargs):
    """(description, messages, chat_template_kwargs, reopen reasoning) in the order tried."""
    forms = [("arguments as given", messages), ("arguments converted", with_arguments_converted(messages))]
    if messages[k].get("content") is None:
        forms += [(name + ", content ''", with_content(form, k, "")) for name, form in forms]
    for name, form in forms:
        yield name, form, kwargs, False
        yield name + ", thinking off", form, dict(kwargs, **THINKING_OFF), False
        yield name + ", reasoning reopened", form, kwargs, True


def make_record(env, source, conversation, k, model_dir, tokens):
    """(record, None) or (None, [reasons])."""
    family = family_of(model_dir)
    messages = conversation["messages"]
    if family == "kimi":
        messages = with_kimi_ids(messages)
    message = messages[k]
    calls = [{"name": call["function"]["name"], "arguments": arguments_object(call["function"]["arguments"])}
             for call in message["tool_calls"]]
    if family == "kimi":
        for call, source_call in zip(calls, message["tool_calls"]):
            call["id"] = source_call["id"]
    reasons = []
    for attempt, form, kwargs, reopen in request_variants(messages, k, conversation.get("kwargs", {})):
        text, reason = generated_text(env, source, conversation, form, k, kwargs, tokens, reopen)
        if text is not None:
            text = strip_end_of_turn(text, family)
            reason = markup_problem(text[answer_start(text):], message, calls)
        if reason:
            if reason not in reasons:
                reasons.append(reason)
            continue
        return {
            "conversation": conversation["name"],
            "message": k,
            "text": text,
            "answer_start": answer_start(text),
            "tools": conversation.get("tools"),
            "content": message.get("content") or "",
            "calls": calls,
            "attempt": attempt,
        }, None
    return None, reasons


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    shared = sys.argv[1]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    out = sys.argv[2] if len(sys.argv) > 2 else os.path.join(repo, "tests", "data", "tool_calls")
    os.makedirs(out, exist_ok=True)
    env = make_environment()
    summary = []
    for template_id, rel, field, name, source in discover_templates(shared):
        model_dir = os.path.dirname(rel)
        tokens = special_tokens(os.path.join(shared, model_dir))
        records, skipped = [], []
        for conversation in CONVERSATIONS:
            for k, message in enumerate(conversation["messages"]):
                if message.get("role") != "assistant" or not message.get("tool_calls"):
                    continue
                record, reasons = make_record(env, source, conversation, k, model_dir, tokens)
                if record:
                    records.append(record)
                else:
                    skipped.append({"conversation": conversation["name"], "message": k, "reasons": reasons})
        write_json(os.path.join(out, template_id + ".json"), dict(
            jinja2_version=jinja2.__version__, file=rel, field=field, name=name, format=format_of(model_dir),
            records=records, skipped=skipped))
        summary.append(f"{template_id}: {len(records)} records, {len(skipped)} skipped")
        for entry in skipped:
            summary.append(f"  skipped {entry['conversation']}: " + "; ".join(entry["reasons"]))
    print("\n".join(summary))


if __name__ == "__main__":
    main()
