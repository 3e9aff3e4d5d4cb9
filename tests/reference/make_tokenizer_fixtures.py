#!/usr/bin/env python3
"""Builds the tokenizer parity fixtures under tests/data/tokenizers/.

Uses the Hugging Face `tokenizers` library (and `tiktoken` for the Kimi-style
fixture) to train small BPE tokenizers that reproduce the structures of the real
target models, then records the library's ids and decoded strings for a held-out
corpus. Our C++ tokenizer must reproduce every id and every string.

usage: make_tokenizer_fixtures.py OUT_DIR [SHARED_MODELS_DIR]
  OUT_DIR            receives tokenizers.tar.gz (the tree to unpack into tests/data/)
                     and meta.json
  SHARED_MODELS_DIR  the reference model files (default: ../shared/models); the
                     DeepSeek-V3 pre-tokenizer regexes and added tokens, the Kimi
                     pat_str and special tokens are read from there

Fixtures (tokenizers/<name>/):
  deepseek_v3        DeepSeek-V3 pre-tokenizer Sequence (3 Split regexes + ByteLevel),
                     its 818 added tokens, BOS template, merges in the "a b" string form
  glm_bytelevel      GLM/Qwen style: NFC, one Split regex, ByteLevel; added tokens with
                     lstrip / rstrip / single_word / normalized flags
  llama_byte_fallback sentencepiece-like BPE: Prepend+Replace normalizer, byte_fallback,
                     unk, decoder Replace/ByteFallback/Fuse/Strip, BOS template
  gpt2_digits        ByteLevel(use_regex, add_prefix_space) after Digits, ignore_merges
  split_behaviours   every Split behaviour and invert, String and Regex patterns
  metaspace_nfkc     NFKC, Metaspace pre-tokenizer and decoder, byte_fallback, BOS+EOS
  kimi_tiktoken      tiktoken ranks + the Kimi K2 pat_str (class intersection), ids from
                     the `tiktoken` library
Each holds tokenizer.json (or tiktoken.model + tokenizer_config.json), expected.jsonl
(one record per corpus line: ids, and decoded strings where they differ from the line)
and decode_probes.jsonl (random id sequences and their decodes).
"""
import base64
import io
import json
import os
import random
import sys
import tarfile
import time
import traceback
import zlib

# Single-threaded, so that the speed figure below compares with our single-thread bench.
os.environ["RAYON_NUM_THREADS"] = "1"
os.environ["TOKENIZERS_PARALLELISM"] = "false"

import tokenizers  # noqa: E402
from tokenizers import (AddedToken, Regex, Tokenizer, decoders, models, normalizers,  # noqa: E402
                        pre_tokenizers, trainers)

OUT = sys.argv[1]
SHARED = sys.argv[2] if len(sys.argv) > 2 else os.path.join(os.path.dirname(__file__), "..", "..", "..", "shared", "models")
HELD_OUT_RANDOM_LINES = 2000
TRAIN_LINES = 24000

files = {}  # path inside the tarball -> bytes
meta = {"tokenizers_version": tokenizers.__version__, "fixtures": {}, "errors": []}
for module in ("transformers", "tiktoken", "regex"):
    try:
        meta[module + "_version"] = __import__(module).__version__
    except Exception as error:  # noqa: BLE001
        meta[module + "_version"] = f"unavailable: {error}"
meta["python"] = sys.version.split()[0]


def put(path, data):
    files[path] = data.encode("utf-8") if isinstance(data, str) else data


def jsonl(records):
    return "".join(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n" for r in records)


# ---------------------------------------------------------------- corpus ----

EN_WORDS = (
    "the of and to in is was for that with as on by at from his her they this which be are or an had not but "
    "have were their one all would there what so up out if about who get which go me when make can like time no "
    "just him know take people into year your good some could them see other than then now look only come its over "
    "think also back after use two how our work first well way even new want because any these give day most us "
    "server token model kernel memory latency throughput request stream decode prefill cache tensor expert router "
    "attention matrix vector quantize gradient batch scheduler thread mutex socket parser compiler runtime"
).split()
EN_CAPS = "The A In It We You They This When If However Meanwhile Yesterday Tokyo London Paris GPU CUDA NVIDIA HTTP JSON".split()
CONTRACTIONS = ["don't", "it's", "we're", "they've", "I'm", "you'll", "she'd", "can't", "IT'S", "WE'LL", "He'S", "O'Neil",
                "rock'n'roll", "'quoted'", "it’s", "we’re"]
ZH = ["我们今天讨论模型推理服务器的性能。", "这个分词器必须与参考实现完全一致", "中文文本中夹杂English单词和数字123",
      "机器学习", "深度求索", "人工智能正在改变世界，", "请把结果写成JSON格式：", "温度设置为零点七", "数据中心的显卡", "龥龤龣",
      "漢字と汉字", "〇一二三四五六七八九十", "「你好」『世界』", "（注释）", "第1章：引言", "你好吗？我很好！", "々〆ー"]
JA = ["日本語のテキストも正しく分割されます。", "カタカナとひらがなの混在", "東京都は晴れ", "ｶﾀｶﾅ半角", "ゟヿ゠", "今日は、世界！",
      "コンピューター", "すもももももももものうち", "ラーメン食べたい"]
KO = ["안녕하세요 세계", "한국어 문장입니다.", "토크나이저 테스트"]
OTHER_SCRIPTS = ["Привет, мир! Как дела?", "Ελληνικά: άλφα βήτα γάμμα", "مرحبا بالعالم", "שלום עולם", "नमस्ते दुनिया",
                 "สวัสดีชาวโลก", "Xin chào thế giới", "Türkçe ığüşöç İSTANBUL", "Ærøskøbing Straße Œuvre ﬁnance",
                 "ქართული ენა", "Հայերեն", "ᏣᎳᎩ", "ꦧꦱꦗꦮ", "𝐇𝐞𝐥𝐥𝐨 𝕨𝕠𝕣𝕝𝕕", "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３"]
EMOJI = ["😀", "👍🏽", "👨‍👩‍👧‍👦", "🇯🇵", "🇺🇸🇫🇷", "❤️", "☺︎", "🏳️‍🌈", "🤖", "🔥🔥🔥", "✅", "©®™", "⌘⌥⇧", "🧑🏿‍💻", "1️⃣", "🫠"]
CODE = [
    "def encode(self, text: str) -> list[int]:\n    return [self.vocab[t] for t in text.split()]\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += a[i] * b[i];\n}\n",
    "    if (x->next != nullptr && x->size >= 0x7fff) return -EINVAL;",
    "const result = await fetch(`/v1/chat/completions`, {method: \"POST\", body: JSON.stringify(req)});",
    "#include <vector>\n#include \"tokenizer.h\"\n\nint main() { return 0; }",
    "{\"ids\": [1, 2, 3], \"text\": \"hello\\nworld\", \"ok\": true, \"score\": -1.5e-3}",
    "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;",
    "x = torch.randn(4, 128, dtype=torch.bfloat16, device='cuda')",
    "<div class=\"row\"><span>&amp;&lt;&gt;</span></div>",
    "fn main() { let v: Vec<u8> = vec![0xde, 0xad, 0xbe, 0xef]; println!(\"{:?}\", v); }",
    "$ rackserve tokenize --model /models/GLM-4.7 --text 'hi there'",
    "a+=b;c-=d;e*=f;g/=h;i%=j;k<<=1;l>>=2;m&&n||o;p!=q;r==s;t<=u;v>=w;x->y;z::w",
    "    \t  \t\t    indented_with_mixed_whitespace()",
    "// TODO(someone): fix the O(n^2) loop @ line 42 #perf",
    "matches = re.findall(r\"\\p{L}+|\\s+(?!\\S)\", text)",
]
NUMBERS = ["3.14159", "1,234,567.89", "2025-11-24", "12:30:45", "0x1F600", "1e-9", "100%", "$19.99", "€5", "№7",
           "٠١٢٣٤٥٦٧٨٩", "०१२३", "１２３４５", "²³¹", "½ ¾ ⅓", "Ⅻ ⅻ", "①②③", "123456789012345678901234567890", "007", "v1.2.3-rc4"]
SPECIALS = [
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>", "<｜tool▁calls▁begin｜>",
    "<｜tool▁call▁begin｜>", "<｜tool▁sep｜>", "<｜tool▁call▁end｜>", "<｜tool▁outputs▁begin｜>", "<｜place▁holder▁no▁17｜>",
    "<｜fim▁hole｜>", "<|endoftext|>", "<|user|>", "<|assistant|>", "<|system|>", "[gMASK]", "<sop>", "<think>", "</think>",
    "<tool_call>", "<tool_calls>", "</tool_call>", "<arg_key>", "<|lstrip|>", "<|rstrip|>", "<|both|>", "hello", "Café",
    "<s>", "</s>", "<unk>", "[INST]", "<|im_user|>", "<|im_end|>", "<|im_assistant|>", "[EOS]", "<|tool_call_begin|>",
    "<|reserved_token_7|>", "<0x41>", "<0xE4>",
]
WS = [" ", "  ", "   ", "\t", "\n", "\n\n", "\r\n", " \n", "\n ", "    ", "\u00a0", "\u3000", "\u2028", "\u0085", "\u200b", "\ufeff", "\x0b", "\x0c"]


def sentence(rng):
    words = [rng.choice(EN_WORDS) for _ in range(rng.randint(3, 14))]
    if rng.random() < 0.5:
        words[0] = rng.choice(EN_CAPS)
    if rng.random() < 0.4:
        words.insert(rng.randrange(len(words)), rng.choice(CONTRACTIONS))
    if rng.random() < 0.3:
        words.insert(rng.randrange(len(words)), rng.choice(NUMBERS))
    text = " ".join(words)
    return text + rng.choice([".", "!", "?", "...", ",", ";", ":", "", " —", "!!", "?!"])


def fragment(rng):
    kind = rng.choices(["en", "zh", "ja", "ko", "other", "emoji", "code", "num", "special", "ws", "combining"],
                       weights=[30, 12, 8, 3, 6, 5, 14, 6, 6, 5, 5])[0]
    if kind == "en":
        return sentence(rng)
    if kind == "zh":
        return "".join(rng.choice(ZH) for _ in range(rng.randint(1, 3)))
    if kind == "ja":
        return "".join(rng.choice(JA) for _ in range(rng.randint(1, 2)))
    if kind == "ko":
        return rng.choice(KO)
    if kind == "other":
        return rng.choice(OTHER_SCRIPTS)
    if kind == "emoji":
        return "".join(rng.choice(EMOJI) for _ in range(rng.randint(1, 4)))
    if kind == "code":
        return rng.choice(CODE)
    if kind == "num":
        return " ".join(rng.choice(NUMBERS) for _ in range(rng.randint(1, 4)))
    if kind == "special":
        return rng.choice(SPECIALS) + rng.choice(["", " ", "\n"]) + sentence(rng)
    if kind == "ws":
        return "".join(rng.choice(WS) for _ in range(rng.randint(1, 6)))
    base = rng.choice(["e", "a", "o", "n", "i", "Z", "ก", "क"])
    marks = "".join(chr(rng.choice([0x301, 0x300, 0x308, 0x323, 0x35C, 0x36F, 0x489, 0x0E31, 0x093F])) for _ in range(rng.randint(1, 5)))
    return base + marks + rng.choice(["", " cafe\u0301", " café", " A\u030a", " Å", " ﬁ"])


def line(rng):
    parts = [fragment(rng) for _ in range(rng.choices([1, 2, 3, 4], weights=[40, 30, 20, 10])[0])]
    out = parts[0]
    for part in parts[1:]:
        out += rng.choice(["", " ", " ", "  ", "\n", "\t", "", ", "]) + part
    return out


HANDCRAFTED = [
    "", " ", "  ", "\n", "\r\n", "\t", "a", "A", "1", "12", "123", "1234", "12345678901", "Hello", " Hello", "Hello ",
    "Hello world", "Hello  world", "hello\n\nworld", " " * 100, " " * 1000, "\n" * 50, "\t" * 30, " \t \n \r\n " * 20,
    "word" + " " * 37 + "word", "x" * 500, "ab" * 300, "🙂" * 64, "漢" * 200, "の" * 120, "9" * 300,
    "a\u0301", "\u0301", "\u0301\u0301\u0301abc", "e\u0301\u0302\u0303\u0304\u0305", "Z\u0351\u0352\u0357\u0358\u035b\u035d",
    "\u00e9 vs e\u0301", "\u212b vs \u00c5 vs A\u030a", "\uac00 vs \u1100\u1161", "ﬁ ﬂ ﬃ ㎏ ㍻ ℡ ½", "Ⅸ ⑳ ⒜ ㊙",
    "\u200b\u200c\u200d\u2060", "\ufeffBOM at start", "ends with BOM\ufeff", "\ufffe\uffff", "\ue000\uf8ff private use",
    "\U0010fffd plane 16", "\U0001d11e music", "\U00020000\U0002a6d6 ext B", "\ufffd replacement char \ufffd",
    "\x00 nul \x01\x02\x1f\x7f control", "\x85 next line", "\u2028 line sep \u2029 para sep", "a\u00a0b\u3000c",
    "it's it'S IT'S it'll it'LL they're THEY'RE we've I'd I'm it’s itſ it'ſ", "'s", "''s", "'''", "can't won't shan't",
    "don't\n'tis", "O'Reilly's", "rock'n'roll's", "'ll'd'm're've's't",
    "<｜User｜>Hello<｜Assistant｜>Hi there<｜end▁of▁sentence｜>",
    "<｜begin▁of▁sentence｜><｜begin▁of▁sentence｜>", "<｜User｜", "<｜User｜><", "<<｜User｜>>", "x<｜tool▁sep｜>y",
    "<｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>get_weather\n```json\n{\"city\": \"Paris\"}\n```<｜tool▁call▁end｜><｜tool▁calls▁end｜>",
    "<think>\nreasoning here\n</think>\n\nanswer", "</think>", "<think></think>", "a<think>b", "<thinking>",
    "<|user|>\nhi<|assistant|>", "[gMASK]<sop><|system|>\nsys", "<tool_call>x</tool_call>", "<tool_calls>", "<tool_callss>",
    "text   <|lstrip|>after", "text<|lstrip|>   after", "before <|rstrip|>   after", "a  <|both|>  b", "\n\n<|both|>\n\n",
    "<|lstrip|><|lstrip|>", "   <|lstrip|>", "<|rstrip|>   ", "hello", "hello world", "say hello!", "ahello", "helloa",
    "hello_there", "_hello", "héllo hello", "1hello", "hello1", "(hello)", "hello.hello", "Café", "Cafe\u0301", "CAFÉ café Café!",
    "<s>", "</s>", "<s> hi", "hi <s>", "<s><s>", "<unk>", "[INST] question [/INST]", "<0x41><0xE4>", "<0x4",
    "<|im_user|>user<|im_middle|>hi<|im_end|><|im_assistant|>", "[BOS][EOS][EOT]", "<|reserved_token_7|>",
    "<|tool_calls_section_begin|><|tool_call_begin|>functions.f:0<|tool_call_argument_begin|>{}<|tool_call_end|>",
    "<|endoftext|>", "<|endoftext|><|endoftext|>", "<|endoftext", "<|fim_prefix|>", "<|endofprompt|>",
    "中文abc中文123中文", "漢字ひらがなカタカナ한글Latin", "日本語の「かな」、漢字。", "你好，世界。", "。、ー々〆〇",
    "Ελληνικά Русский العربية עברית हिन्दी ไทย", "مرحبا123عالم", "תל-אביב", "ﷺ ﷽", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
    "👨‍👩‍👧‍👦👍🏽🇯🇵❤️", "🏳️‍🌈 and 🏴‍☠️", "emoji🙂in🙂words", "#️⃣*️⃣", "\U0001f600\U0001f601\U0001f602" * 10,
    "$$$ %%% ^^^ &&& *** ((( )))", "!!!???...", "---===+++", "a-b_c.d/e\\f", "::->=>", "```python\nprint(1)\n```",
    "http://example.com/path?q=1&r=2#frag", "user@example.com", "C:\\Program Files\\x", "~/.bashrc", "${HOME}/x",
    "1.5 -2 +3 1e10 0.0001 1,000 1_000_000", "3.14.15.92", "v2.0.0-beta+exp.sha.5114f85",
    "\u0660\u0661\u0662 \u06f1\u06f2 \u0966\u0967 \uff11\uff12", "１２３ＡＢＣａｂｃ", "ｶﾞｷﾞｸﾞ",
    "ǅ ǈ ǋ ᾈ ᾼ", "ß ẞ ﬀ İ ı", "Ǆungla ǆ", "\u0130stanbul", "ŉ", "\u1e9e",
    "trailing spaces   ", "   leading spaces", " \u00a0 mixed \u3000 spaces \u2009 ", "tab\tseparated\tvalues",
    "line1\nline2\r\nline3\rline4", "\r\r\r", "\n \n \n", "a\n\n\n\n\nb", "word\n   indented", "  \n  \n",
]


def make_corpus(seed, count):
    rng = random.Random(seed)
    return [line(rng) for _ in range(count)]


train_corpus = make_corpus(1, TRAIN_LINES) + [x * 3 for x in HANDCRAFTED[:20]]
held_out = HANDCRAFTED + make_corpus(2, HELD_OUT_RANDOM_LINES)
put("tokenizers/corpus.jsonl", jsonl({"text": t} for t in held_out))
meta["corpus_lines"] = len(held_out)

# ------------------------------------------------------------- fixtures ----


def read_json(path):
    with open(os.path.join(SHARED, path), encoding="utf-8") as f:
        return json.load(f)


def record_fixture(name, encode, decode, valid_ids, extra_files=None):
    """Encodes the held-out corpus and random id probes; stores the results."""
    records, mismatched_round_trips = [], 0
    started = time.time()
    for text in held_out:
        ids = encode(text)
        keep, skip = decode(ids, False), decode(ids, True)
        rec = {"ids": ids}
        if keep != text:
            rec["keep"] = keep
        if skip != text:
            rec["skip"] = skip
            mismatched_round_trips += 1
        records.append(rec)
    elapsed = time.time() - started
    rng = random.Random(zlib.crc32(name.encode()))
    probes = []
    for _ in range(300):
        ids = [rng.choice(valid_ids) for _ in range(rng.randint(1, 12))]
        if rng.random() < 0.3:  # runs of adjacent ids hit byte tokens and partial UTF-8
            start = rng.randrange(len(valid_ids))
            ids = [valid_ids[min(len(valid_ids) - 1, start + k)] for k in range(rng.randint(2, 8))]
        probes.append({"ids": ids, "keep": decode(ids, False), "skip": decode(ids, True)})
    for path, data in (extra_files or {}).items():
        put(f"tokenizers/{name}/{path}", data)
    put(f"tokenizers/{name}/expected.jsonl", jsonl(records))
    put(f"tokenizers/{name}/decode_probes.jsonl", jsonl(probes))
    meta["fixtures"][name] = {"lines": len(records), "tokens": sum(len(r["ids"]) for r in records),
                              "lines_not_round_tripping_with_skip": mismatched_round_trips,
                              "encode_decode_seconds": round(elapsed, 3), "ids": len(valid_ids)}
    print(f"{name}: {len(records)} lines, {meta['fixtures'][name]['tokens']} tokens", flush=True)


def hf_fixture(name, tok, add_special_tokens=True, config=None):
    """Reloads `tok` from its JSON (what we ship is what was tested) and records it."""
    data = json.loads(tok.to_str()) if isinstance(tok, Tokenizer) else tok
    text = json.dumps(data, ensure_ascii=False, separators=(",", ":"))
    tok = Tokenizer.from_str(text)
    extra = {"tokenizer.json": text}
    if config is not None:
        extra["tokenizer_config.json"] = json.dumps(config, ensure_ascii=False, indent=1)
    record_fixture(name,
                   lambda t: tok.encode(t, add_special_tokens=add_special_tokens).ids,
                   lambda ids, skip: tok.decode(ids, skip_special_tokens=skip),
                   sorted(tok.get_vocab(with_added_tokens=True).values()), extra)
    return tok


def train(tok, vocab_size, special_tokens, **kwargs):
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, special_tokens=special_tokens,
                                  show_progress=False, **kwargs)
    tok.train_from_iterator(train_corpus, trainer=trainer)
    return tok


def string_merges(data):
    data["model"]["merges"] = [" ".join(m) if isinstance(m, list) else m for m in data["model"]["merges"]]
    return data


def added_token_json(tid, content, special, normalized=None, lstrip=False, rstrip=False, single_word=False):
    return {"id": tid, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": (not special) if normalized is None else normalized, "special": special}


def fixture_deepseek():
    excerpt = read_json("deepseek-v3/tokenizer.excerpt.json")
    config = read_json("deepseek-v3/tokenizer_config.expanded.json")
    added = sorted(((int(k), v) for k, v in config["added_tokens_decoder"].items()))
    assert len(added) == 818, len(added)
    first_three = [v["content"] for k, v in added if k < 3]
    tok = Tokenizer(models.BPE(byte_fallback=False))
    tok.normalizer = normalizers.Sequence([])
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(p["pattern"]["Regex"]), behavior=p["behavior"].lower(), invert=p["invert"])
        for p in excerpt["pre_tokenizer"]["pretokenizers"] if p["type"] == "Split"
    ] + [pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    train(tok, 4500, first_three, initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    data = string_merges(json.loads(tok.to_str()))
    base = len(data["model"]["vocab"])
    data["added_tokens"] = [added_token_json(k if k < 3 else base + k - 128000, v["content"], v["special"],
                                             v["normalized"], v["lstrip"], v["rstrip"], v["single_word"])
                            for k, v in added]
    bos = first_three[0]
    data["post_processor"] = {
        "type": "TemplateProcessing",
        "single": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
        "pair": [{"SpecialToken": {"id": bos, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                 {"SpecialToken": {"id": bos, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
        "special_tokens": {bos: {"id": bos, "ids": [0], "tokens": [bos]}},
    }
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": bos, "eos_token": first_three[1],
           "tokenizer_class": "LlamaTokenizerFast"}
    tok = hf_fixture("deepseek_v3", data, config=cfg)
    try:  # the transformers layer on top must agree (it is what vLLM/SGLang call)
        from transformers import PreTrainedTokenizerFast
        wrapped = PreTrainedTokenizerFast(tokenizer_object=tok)
        agree = sum(wrapped.encode(t) == tok.encode(t).ids for t in held_out)
        meta["fixtures"]["deepseek_v3"]["transformers_agreeing_lines"] = agree
    except Exception as error:  # noqa: BLE001
        meta["fixtures"]["deepseek_v3"]["transformers_check"] = f"failed: {error!r}"
    return tok


GLM_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|"
               r"\s*[\r\n]+|\s+(?!\S)|\s+")


def fixture_glm():
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(GLM_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    train(tok, 4500, ["<|endoftext|>"], initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    data = json.loads(tok.to_str())
    data["post_processor"] = {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": False, "use_regex": False}
    tok = Tokenizer.from_str(json.dumps(data))
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in
                            ["[gMASK]", "<sop>", "<|system|>", "<|user|>", "<|assistant|>", "<|observation|>"]])
    tok.add_tokens([AddedToken(t, normalized=False, special=False) for t in
                    ["<think>", "</think>", "<tool_call>", "<tool_calls>", "</tool_call>", "<arg_key>"]])
    tok.add_special_tokens([AddedToken("<|lstrip|>", lstrip=True, normalized=False, special=True),
                            AddedToken("<|rstrip|>", rstrip=True, normalized=False, special=True)])
    tok.add_tokens([AddedToken("<|both|>", lstrip=True, rstrip=True, normalized=False, special=False),
                    AddedToken("hello", single_word=True, normalized=False, special=False),
                    AddedToken("Cafe\u0301", normalized=True, special=False),
                    AddedToken("ﬁx", normalized=True, special=False)])
    return hf_fixture("glm_bytelevel", tok)


def fixture_gpt2_digits(glm):
    data = json.loads(glm.to_str())
    data["normalizer"] = None
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        {"type": "Digits", "individual_digits": True},
        {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True}]}
    data["model"]["ignore_merges"] = True
    data["post_processor"] = None
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in ("<|endoftext|>", "<think>")]
    return hf_fixture("gpt2_digits", data)


def fixture_split_behaviours(glm):
    data = json.loads(glm.to_str())
    data["normalizer"] = {"type": "Sequence", "normalizers": [
        {"type": "Replace", "pattern": {"Regex": "\\s{3,}"}, "content": "   "},
        {"type": "Replace", "pattern": {"String": "hello"}, "content": "hi"}]}
    split = lambda pattern, behavior, invert=False: {"type": "Split", "pattern": pattern, "behavior": behavior, "invert": invert}  # noqa: E731
    data["pre_tokenizer"] = {"type": "Sequence", "pretokenizers": [
        split({"Regex": "\\p{P}"}, "MergedWithPrevious"),
        split({"String": "-"}, "Removed"),
        split({"Regex": "\\d"}, "Contiguous"),
        split({"Regex": "\\s"}, "MergedWithNext"),
        split({"Regex": "[A-Za-z]+"}, "MergedWithPrevious", True),
        split({"String": "::"}, "Isolated"),
        split({"Regex": "\\p{So}"}, "Removed"),
        {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False}]}
    data["post_processor"] = None
    data["added_tokens"] = [t for t in data["added_tokens"] if t["content"] in ("<|endoftext|>", "<|user|>")]
    return hf_fixture("split_behaviours", data)


def sentencepiece_like():
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="always", split=True)
    train(tok, 3200, ["<unk>", "<s>", "</s>"], limit_alphabet=180)
    data = json.loads(tok.to_str())
    vocab = data["model"]["vocab"]
    ordered = sorted(vocab.items(), key=lambda kv: kv[1])
    new_vocab = {}
    for token, _ in ordered[:3]:
        new_vocab[token] = len(new_vocab)
    for b in range(256):
        new_vocab[f"<0x{b:02X}>"] = len(new_vocab)
    for token, _ in ordered[3:]:
        if token not in new_vocab:
            new_vocab[token] = len(new_vocab)
    data["model"]["vocab"] = new_vocab
    data["model"]["byte_fallback"] = True
    data["model"]["fuse_unk"] = True
    data["added_tokens"] = [added_token_json(new_vocab[t], t, True, False) for t in ("<unk>", "<s>", "</s>")]
    return data


def template(tokens, ids_by_token):
    single = []
    for t in tokens:
        single.append({"Sequence": {"id": "A", "type_id": 0}} if t == "$A" else {"SpecialToken": {"id": t, "type_id": 0}})
    return {"type": "TemplateProcessing", "single": single, "pair": single + [{"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {t: {"id": t, "ids": [ids_by_token[t]], "tokens": [t]} for t in tokens if t != "$A"}}


def fixture_llama(data):
    data = json.loads(json.dumps(data))
    data["normalizer"] = {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "▁"},
                                                            {"type": "Replace", "pattern": {"String": " "}, "content": "▁"}]}
    data["pre_tokenizer"] = None
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Replace", "pattern": {"String": "▁"}, "content": " "}, {"type": "ByteFallback"}, {"type": "Fuse"},
        {"type": "Strip", "content": " ", "start": 1, "stop": 0}]}
    data["post_processor"] = template(["<s>", "$A"], data["model"]["vocab"])
    base = len(data["model"]["vocab"])
    data["added_tokens"].append(added_token_json(base, "[INST]", False, False))
    return hf_fixture("llama_byte_fallback", data)


def fixture_metaspace(data):
    data = json.loads(json.dumps(data))
    data["normalizer"] = {"type": "NFKC"}
    data["pre_tokenizer"] = {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True}
    data["decoder"] = {"type": "Sequence", "decoders": [
        {"type": "Metaspace", "replacement": "▁", "prepend_scheme": "first", "split": True},
        {"type": "ByteFallback"}, {"type": "Fuse"}]}
    data["post_processor"] = template(["<s>", "$A", "</s>"], data["model"]["vocab"])
    return hf_fixture("metaspace_nfkc", data)


def byte_level_decoder_map():
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return {chr(c): b for b, c in zip(bs, cs)}


def fixture_kimi(glm):
    import tiktoken
    with open(os.path.join(SHARED, "kimi-k2/pat_str.txt"), encoding="utf-8") as f:
        pat_str = f.read().rstrip("\n")
    config = read_json("kimi-k2.5/tokenizer_config.derived-kite.json")
    char_to_byte = byte_level_decoder_map()
    ranks = {}
    for token, tid in json.loads(glm.to_str())["model"]["vocab"].items():
        if all(c in char_to_byte for c in token) and token != "<|endoftext|>":
            ranks[bytes(char_to_byte[c] for c in token)] = tid
    base = max(ranks.values()) + 1
    names = {int(k) - 163584: v for k, v in config["added_tokens_decoder"].items()}
    special_tokens = {names[i]["content"] if i in names else f"<|reserved_token_{base + i}|>": base + i for i in range(256)}
    new_config = dict(config)
    new_config["added_tokens_decoder"] = {str(base + i): v for i, v in names.items()}
    enc = tiktoken.Encoding(name="kimi_fixture", pat_str=pat_str, mergeable_ranks=ranks, special_tokens=special_tokens)
    special_ids = {base + i for i, v in names.items() if v["special"]} | {base + i for i in range(256) if i not in names}
    rank_file = "".join(f"{base64.b64encode(t).decode()} {r}\n" for t, r in sorted(ranks.items(), key=lambda kv: kv[1]))

    def decode(ids, skip):
        return enc.decode([i for i in ids if not (skip and i in special_ids)])

    valid_ids = sorted(ranks.values()) + list(range(base, base + 256))
    record_fixture("kimi_tiktoken", lambda t: enc.encode(t, allowed_special="all"), decode, valid_ids,
                   {"tiktoken.model": rank_file, "tokenizer_config.json": json.dumps(new_config, ensure_ascii=False, indent=1)})
    try:  # a second opinion on the pre-tokenizer split, from the Python `regex` module
        import regex
        probes = [t for t in HANDCRAFTED if any(ord(c) > 0x2E7F for c in t)][:40]
        put("tokenizers/kimi_tiktoken/regex_module_splits.jsonl",
            jsonl({"text": t, "pieces": regex.findall(pat_str, t, flags=regex.V1)} for t in probes))
    except Exception as error:  # noqa: BLE001
        meta["errors"].append(f"regex splits: {error!r}")


def time_hf(name, tok):
    """Single-thread encode speed on the held-out corpus concatenated and repeated to >= 1 MB."""
    text = "\n".join(held_out)
    text = text * (1 + (1 << 20) // len(text.encode("utf-8")))
    for _ in range(2):
        tok.encode(text[:10000])
    start = time.perf_counter()
    ids = tok.encode(text, add_special_tokens=False).ids
    seconds = time.perf_counter() - start
    meta.setdefault("speed", {})[name] = {"bytes": len(text.encode("utf-8")), "tokens": len(ids),
                                          "seconds": round(seconds, 4), "tokens_per_second": round(len(ids) / seconds)}


def main():
    os.makedirs(OUT, exist_ok=True)
    steps = []
    glm = None
    sp = None
    try:
        deepseek = fixture_deepseek()
        steps.append(("deepseek_v3", deepseek))
    except Exception:  # noqa: BLE001
        meta["errors"].append("deepseek_v3: " + traceback.format_exc())
    try:
        glm = fixture_glm()
        steps.append(("glm_bytelevel", glm))
    except Exception:  # noqa: BLE001
        meta["errors"].append("glm_bytelevel: " + traceback.format_exc())
    for name, fn in (("gpt2_digits", fixture_gpt2_digits), ("split_behaviours", fixture_split_behaviours),
                     ("kimi_tiktoken", fixture_kimi)):
        try:
            if glm is not None:
                fn(glm)
        except Exception:  # noqa: BLE001
            meta["errors"].append(f"{name}: " + traceback.format_exc())
    try:
        sp = sentencepiece_like()
        steps.append(("llama_byte_fallback", fixture_llama(sp)))
        fixture_metaspace(sp)
    except Exception:  # noqa: BLE001
        meta["errors"].append("sentencepiece: " + traceback.format_exc())
    for name, tok in steps:
        try:
            time_hf(name, tok)
        except Exception:  # noqa: BLE001
            meta["errors"].append(f"timing {name}: " + traceback.format_exc())
    put("tokenizers/meta.json", json.dumps(meta, ensure_ascii=False, indent=1))
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as tar:
        for path, data in sorted(files.items()):
            info = tarfile.TarInfo(path)
            info.size = len(data)
            info.mtime = 0
            tar.addfile(info, io.BytesIO(data))
    with open(os.path.join(OUT, "tokenizers.tar.gz"), "wb") as f:
        f.write(buffer.getvalue())
    with open(os.path.join(OUT, "meta.json"), "w", encoding="utf-8") as f:
        json.dump(meta, f, ensure_ascii=False, indent=1)
    total = sum(len(d) for d in files.values())
    print(f"wrote {len(files)} files, {total} bytes uncompressed, {len(buffer.getvalue())} compressed", flush=True)
    for error in meta["errors"]:
        print("ERROR", error, flush=True)


if __name__ == "__main__":
    main()
