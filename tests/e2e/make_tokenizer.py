#!/usr/bin/env python3
"""Trains the tiny byte-level BPE tokenizer of the e2e fixture and writes its files.

The e2e tests serve tests/data/models/dsv3-qlora-yarn-groups (vocab_size 512, no
tokenizer). This script (Python 3 standard library only) trains a GPT-2-style
byte-level BPE on the small English corpus below so that every id lies below 512:

    ids 0..5     added tokens: <|bos|> <|eos|> <|user|> <|assistant|> (special), <think> </think>
    ids 6..261   the 256 byte symbols
    ids 262..511 250 learned merges

and writes tests/data/e2e/tokenizer.json and tokenizer_config.json (with a chat
template that opens <think> when chat_template_kwargs.enable_thinking is true).
Run it from anywhere; the output is deterministic.
"""
import collections
import json
import pathlib
import re

VOCAB_SIZE = 512
ADDED = [("<|bos|>", True), ("<|eos|>", True), ("<|user|>", True), ("<|assistant|>", True),
         ("<think>", False), ("</think>", False)]

CORPUS = """
The quick brown fox jumps over the lazy dog. A server answers requests from many clients at once.
Hello world! How are you today? I am fine, thank you. What is the capital of France? Paris is the capital.
Tell me a story about a small robot that learns to paint. The robot painted the sky in the morning.
Large language models predict the next token from the tokens before it. Each token is a piece of text.
The engine schedules prefill and decode steps, and the cache keeps pages of keys and values for every layer.
Please write a short poem about the sea. The sea is wide and blue, and the waves come and go.
Numbers like 1, 2, 3, 10, 42 and 2025 appear in text. Count from one to ten: one two three four five six seven eight nine ten.
You are a helpful assistant. Answer the question in one sentence. Think step by step before you answer.
The weather is nice and the sun is shining. We went for a walk in the park and talked about books.
Good morning, good evening, good night. Thanks for the help with the code; it works now.
def main(): return 0 # code has brackets (like this) and symbols such as = + - * / < > : ; , .
Stream the answer token by token, and stop when the model writes the end of the text.
""" * 3


def bytes_to_unicode():
    """GPT-2's reversible byte -> printable character map (what ByteLevel uses)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("\xa1"), ord("\xac") + 1)) + \
        list(range(ord("\xae"), ord("\xff") + 1))
    chars = printable[:]
    extra = 0
    for byte in range(256):
        if byte not in printable:
            printable.append(byte)
            chars.append(256 + extra)
            extra += 1
    return {byte: chr(char) for byte, char in zip(printable, chars)}


# GPT-2's split pattern restricted to what Python's `re` can say (ASCII letters and digits);
# the corpus is ASCII, so the training splits equal those of the real pattern.
SPLIT = re.compile(r"'s|'t|'re|'ve|'m|'ll|'d| ?[A-Za-z]+| ?[0-9]+| ?[^\sA-Za-z0-9]+|\s+(?!\S)|\s+")


def train(corpus, merges_wanted):
    byte_map = bytes_to_unicode()
    words = collections.Counter(tuple(byte_map[b] for b in piece.encode()) for piece in SPLIT.findall(corpus))
    merges = []
    for _ in range(merges_wanted):
        pairs = collections.Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        # Most frequent pair; ties broken by the pair itself so the result is deterministic.
        best = max(pairs.items(), key=lambda item: (item[1], tuple(-ord(c) for c in item[0][0] + "\0" + item[0][1])))[0]
        merges.append(best)
        merged = collections.Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return byte_map, merges


def main():
    out_dir = pathlib.Path(__file__).resolve().parents[1] / "data" / "e2e"
    out_dir.mkdir(parents=True, exist_ok=True)
    byte_map, merges = train(CORPUS, VOCAB_SIZE - len(ADDED) - 256)
    vocab = {}
    for byte in range(256):
        vocab[byte_map[byte]] = len(ADDED) + byte
    for left, right in merges:
        vocab.setdefault(left + right, len(ADDED) + len(vocab))
    assert max(vocab.values()) < VOCAB_SIZE, "the vocabulary must fit the model's vocab_size"
    added = [{"id": i, "content": text, "single_word": False, "lstrip": False, "rstrip": False,
              "normalized": False, "special": special} for i, (text, special) in enumerate(ADDED)]
    tokenizer = {
        "version": "1.0", "truncation": None, "padding": None, "added_tokens": added, "normalizer": None,
        "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": True},
        "post_processor": {
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": "<|bos|>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {"<|bos|>": {"id": "<|bos|>", "ids": [0], "tokens": ["<|bos|>"]}}},
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {"type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": False,
                  "vocab": vocab, "merges": [[left, right] for left, right in merges]},
    }
    template = (
        "{{ bos_token }}"
        "{% for message in messages %}"
        "{% if message['role'] == 'system' %}{{ message['content'] }}\n"
        "{% elif message['role'] == 'user' %}<|user|>{{ message['content'] }}"
        "{% elif message['role'] == 'assistant' %}<|assistant|>{{ message['content'] }}<|eos|>"
        "{% else %}{{ raise_exception('unsupported role: ' + message['role']) }}{% endif %}"
        "{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% if enable_thinking is defined and enable_thinking %}<think>\n"
        "{% endif %}{% endif %}")
    config = {"bos_token": "<|bos|>", "eos_token": "<|eos|>", "add_bos_token": True, "add_eos_token": False,
              "model_max_length": 128, "tokenizer_class": "PreTrainedTokenizerFast", "chat_template": template}
    (out_dir / "tokenizer.json").write_text(json.dumps(tokenizer, ensure_ascii=False, indent=1) + "\n")
    (out_dir / "tokenizer_config.json").write_text(json.dumps(config, indent=1) + "\n")
    print(f"wrote {out_dir}: {len(vocab) + len(ADDED)} ids, {len(merges)} merges")


if __name__ == "__main__":
    main()
