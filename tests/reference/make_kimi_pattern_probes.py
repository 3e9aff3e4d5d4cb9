#!/usr/bin/env python3
"""Writes tests/data/tokenizers/kimi_tiktoken/pattern_probes.jsonl: how the Python `regex`
module (V1, which implements the class intersection `[...&&[^\\p{Han}]]` natively) splits
texts chosen to exercise Kimi K2's pat_str: Han next to other letters (kana, Hangul, Latin,
Cyrillic, marks), upper/lower case runs, and apostrophe suffixes in every case.

usage: make_kimi_pattern_probes.py OUT_JSONL [SHARED_MODELS_DIR]
"""
import json
import os
import sys

import regex

OUT = sys.argv[1]
SHARED = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "models")
with open(os.path.join(SHARED, "kimi-k2", "pat_str.txt"), encoding="utf-8") as f:
    PATTERN = f.read().rstrip("\n")

TEXTS = [
    "中文abc", "abc中文", "Hello世界", "世界Hello", "漢字ひらがなカタカナ한글Latin", "カタカナ漢字かな", "東京タワーへ行く",
    "中国China中国", "ЁжиК漢字Ёж", "λόγος漢λόγος", "e\u0301漢e\u0301", "漢\u0301字", "\u0301漢", "ABC漢DEF", "aBc漢dEf",
    "日本語のテキスト。", "你好，世界。", "「你好」『世界』", "〇一二三", "々〆ー", "漢字123漢字", "漢字 漢字  漢字",
    "it's", "it'S", "IT'S", "It's", "they're THEY'RE", "we've WE'VE", "I'm I'M", "you'll YOU'LL", "she'd SHE'D",
    "don't DON'T", "O'Neil's", "rock'n'roll", "'s", "'S alone", "x's漢's", "漢's", "中文's", "カナ's", "ÉCOLE'S", "naïve's",
    "ǅungla's", "ǈ's", "İstanbul's", "straße'S", "it’s", "CamelCaseWord", "camelCaseWord", "ALLCAPS", "Ünïcödé ÜNÏCÖDÉ",
    "  leading", "trailing  ", "a\n\nb", "tab\there", "x  \n  y", "$100 漢字!", "(漢字)", "漢字...", "мир's МИР'S",
]

with open(OUT, "w", encoding="utf-8") as out:
    for text in TEXTS:
        pieces = regex.findall(PATTERN, text, flags=regex.V1)
        out.write(json.dumps({"text": text, "pieces": pieces}, ensure_ascii=False) + "\n")
print(f"wrote {len(TEXTS)} probes with regex {regex.__version__}")
