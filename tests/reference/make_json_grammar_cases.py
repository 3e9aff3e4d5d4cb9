#!/usr/bin/env python3
"""Writes tests/data/json_grammar/cases.jsonl: byte strings labelled by Python's json module,
the reference for JsonGrammar (src/engine/json_grammar.h, response_format json_object).

Each line: {"hex": the bytes as hex, "object": bool} and, for objects, "depth": the nesting
depth of the parsed value (containers count 1 each, so "{}" is 1). "object" is true when
  1. the bytes decode as strict UTF-8 (bytes.decode("utf-8"): no overlongs, no encoded
     surrogates, nothing above U+10FFFF; json.loads(bytes) would instead guess UTF-16/32 from
     NUL bytes and decode with "surrogatepass", which RFC 8259's UTF-8 does not allow),
  2. json.loads(text, strict=True) succeeds, with NaN / Infinity / -Infinity refused
     (parse_constant raises),
  3. the value is a dict, and
  4. the first byte is '{': json_object mode lets the model write no whitespace before the
     object (Python would accept it).
Python has no depth limit near 128: a valid document deeper than JsonGrammar::kMaxDepth is
labelled true with its depth, and the test expects the grammar to refuse it.

Cases: valid documents from random nested values (json.dumps with varied separators, indent
and ensure_ascii, and a writer of our own that varies whitespace, number spellings and
escapes), one-byte mutations of them (delete, insert, replace), and hand-written edge cases.

usage: python3 tests/reference/make_json_grammar_cases.py [OUT_JSONL]
  (default tests/data/json_grammar/cases.jsonl next to this script's repo; deterministic)
"""
import json
import os
import random
import sys

MAX_DEPTH = 128  # JsonGrammar::kMaxDepth
SEED = 20260117
DUMPED_DOCUMENTS = 200
WRITTEN_DOCUMENTS = 100
MUTATIONS = 600
MAX_MUTATED_LENGTH = 160  # keeps the file small

rng = random.Random(SEED)

STRING_PIECES = ["a", "key", "Hello", " ", "x y", '"', "\\", "/", "\b", "\f", "\n", "\r", "\t", "\x00", "\x01",
                 "\x1f", "\x7f", "é", "ß", "中文", "Ω", "\u2028", "\ufeff", "\uffff", "😀", "𝄞", "\U0010ffff", "0",
                 "true", "{", "}", "[", "]", ":", ","]


def random_string():
    return "".join(rng.choice(STRING_PIECES) for _ in range(rng.randint(0, 4)))


def random_number():
    kind = rng.randrange(4)
    if kind == 0:
        return rng.randint(-10, 10)
    if kind == 1:
        return rng.randint(-10**20, 10**20)
    if kind == 2:
        return rng.uniform(-1000, 1000)
    return rng.choice([0.0, -0.0, 1e-7, 2.5e300, -3.25e-300, 1e16, 123456789.125])


def random_value(depth):
    kind = rng.randrange(9 if depth < 4 else 6)
    if kind == 0:
        return random_string()
    if kind == 1:
        return random_number()
    if kind == 2:
        return rng.choice([True, False, None])
    if kind in (3, 4, 5):
        return rng.choice([random_string(), random_number(), rng.randint(0, 99)])
    if kind in (6, 7):
        return {random_string(): random_value(depth + 1) for _ in range(rng.randint(0, 3))}
    return [random_value(depth + 1) for _ in range(rng.randint(0, 3))]


def random_object():
    return {random_string(): random_value(1) for _ in range(rng.randint(0, 4))}


def dumped_document():
    separators = rng.choice([None, (",", ":"), (", ", ": "), (" ,", " : ")])
    indent = rng.choice([None, None, 0, 1, 2, "\t", "\r\n"])
    text = json.dumps(random_object(), ensure_ascii=rng.random() < 0.5, separators=separators, indent=indent)
    if rng.random() < 0.2:
        text = text.replace("/", "\\/")  # '/' only occurs inside strings
    return text.encode("utf-8")


# --- our own writer: JSON's freedoms json.dumps never uses
WHITESPACE = [" ", "\t", "\n", "\r"]


def space():
    return "".join(rng.choice(WHITESPACE) for _ in range(rng.choice([0, 0, 0, 1, 2])))


def number_text():
    text = rng.choice(["", "-"]) + rng.choice(["0", str(rng.randint(1, 9)), str(rng.randint(10, 10**12))])
    if rng.random() < 0.5:
        text += "." + str(rng.randint(0, 10**6)).zfill(rng.randint(1, 4))
    if rng.random() < 0.5:
        text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 400))
    return text


def string_text(value):
    out = []
    for ch in value:
        if ch in '"\\' or ord(ch) < 0x20 or rng.random() < 0.15:
            short = {'"': '\\"', "\\": "\\\\", "/": "\\/", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
                     "\t": "\\t"}.get(ch)
            if short and rng.random() < 0.7:
                out.append(short)
            elif ord(ch) > 0xFFFF:
                high, low = divmod(ord(ch) - 0x10000, 0x400)
                out.append("\\u%04x\\u%04X" % (0xD800 + high, 0xDC00 + low))
            else:
                out.append(("\\u%04x" if rng.random() < 0.5 else "\\u%04X") % ord(ch))
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def write_value(value):
    if isinstance(value, dict):
        items = [space() + string_text(k) + space() + ":" + space() + write_value(v) + space() for k, v in value.items()]
        return "{" + (",".join(items) if items else space()) + "}"
    if isinstance(value, list):
        items = [space() + write_value(v) + space() for v in value]
        return "[" + (",".join(items) if items else space()) + "]"
    if isinstance(value, str):
        return string_text(value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return number_text()


def written_document():
    return (write_value(random_object()) + space()).encode("utf-8")


# --- mutations
MUTATION_BYTES = (list(b'{}[]:,"\\/-+.eE0123456789') + list(b"abfnrtulsxyzAZ") + list(b" \t\n\r") +
                  [0x00, 0x01, 0x08, 0x0c, 0x1f, 0x7f] + list(range(0x80, 0x100)))


def mutated(document):
    data = bytearray(document)
    operation = rng.choice(["delete", "insert", "replace"] if data else ["insert"])
    at = rng.randrange(len(data) + (operation == "insert"))
    if operation == "delete":
        del data[at]
    elif operation == "insert":
        data.insert(at, rng.choice(MUTATION_BYTES))
    else:
        data[at] = rng.choice(MUTATION_BYTES)
    return bytes(data)


# --- hand-written edge cases
def nested(depth, inner=b""):
    """`depth` containers, objects at even levels (the top-level object is level 0) and arrays
    at odd ones, each holding the next; the innermost holds `inner` as its value."""
    text = inner
    for level in reversed(range(depth)):
        if level % 2 == 0:
            text = b'{"k":' + text + b"}" if text else b"{}"
        else:
            text = b"[" + text + b"]"
    return text


EDGE_CASES = [
    b"", b"{", b"}", b"{}", b"{} ", b" {}", b"\n{}", b"{}\n\t\r ", b"{}x", b"{}{}", b"{},", b"[]", b"[{}]", b"1",
    b'"s"', b"true", b"null", b"\xef\xbb\xbf{}", b'{"a":1}', b'{"a":1,}', b'{"a":[1,]}', b'{,"a":1}', b'{"a" 1}',
    b'{"a"::1}', b'{"a":1 "b":2}', b"{a:1}", b"{'a':1}", b'{"a":01}', b'{"a":-01}', b'{"a":1.}', b'{"a":.5}',
    b'{"a":-.5}', b'{"a":1e}', b'{"a":1e+}', b'{"a":1E-7}', b'{"a":-}', b'{"a":-0}', b'{"a":-0.0e-0}', b'{"a":+1}',
    b'{"a":0x10}', b'{"a":1_000}', b'{"a":1.5e3.2}', b'{"a":00}', b'{"a":0e}', b'{"a":NaN}', b'{"a":Infinity}',
    b'{"a":-Infinity}', b'{"a":tru}', b'{"a":truee}', b'{"a":True}', b'{"a":nul}', b'{"a":falsey}', b'{"a":true}',
    b'{"a":false,"b":null}', b'{"a":"\\ud800"}', b'{"a":"\\udc00\\ud800"}', b'{"a":"\\ud83d\\ude00"}',
    b'{"a":"\\u00e9\\u00E9"}', b'{"a":"\\u12"}', b'{"a":"\\u12g4"}', b'{"a":"\\x41"}', b'{"a":"\\a"}', b'{"a":"\\\'"}',
    b'{"a":"\\/\\b\\f\\n\\r\\t\\"\\\\"}', b'{"a":"\t"}', b'{"a":"\n"}', b'{"a":"\x00"}', b'{"a":"\x1f"}',
    b'{"a":"\x7f"}', b'{"a":"\xc3\xa9"}', b'{"a":"\xc3"}', b'{"a":"\xc3\xc3"}', b'{"a":"\x80"}', b'{"a":"\xbf"}',
    b'{"a":"\xc0\x80"}', b'{"a":"\xc1\xbf"}', b'{"a":"\xe0\x80\x80"}', b'{"a":"\xe0\x9f\xbf"}', b'{"a":"\xe0\xa0\x80"}',
    b'{"a":"\xed\x9f\xbf"}', b'{"a":"\xed\xa0\x80"}', b'{"a":"\xed\xbf\xbf"}', b'{"a":"\xef\xbf\xbf"}',
    b'{"a":"\xf0\x8f\xbf\xbf"}', b'{"a":"\xf0\x90\x80\x80"}', b'{"a":"\xf4\x8f\xbf\xbf"}', b'{"a":"\xf4\x90\x80\x80"}',
    b'{"a":"\xf5\x80\x80\x80"}', b'{"a":"\xff"}', b'{"a":"\xe2\x82"}', b'{"a":"\xe2\x82\xac"}', b'{"\xe2\x82\xac":1}',
    b'{"a":"unterminated}', b'{"a":[}', b'{"a":[1}', b'{"a":{]}', b'{"a":[]]}', b'{"a":{}}}', b'{"a":[[[]]]}',
    b'{"a":{"b":{"c":[true,false,null,-1.5E+10,"x"]}}}', b'{ "a" : [ 1 , 2 ] , "b" : { } }',
    b'{\t"a"\n:\r1\n}', b'{"a":1\x0b}', b'{"a":1\x0c}', b'{"a":\xc2\xa01}', b'{"":""}', b'{"a":"b","a":"c"}',
    nested(MAX_DEPTH - 1), nested(MAX_DEPTH), nested(MAX_DEPTH + 1), nested(MAX_DEPTH + 2),
    nested(MAX_DEPTH, b"1"), nested(MAX_DEPTH + 1, b"1"), nested(MAX_DEPTH - 1, b"[]"), nested(MAX_DEPTH - 1, b"{}"),
    nested(MAX_DEPTH - 2, b"[[]]"), nested(MAX_DEPTH, b'"s",]'),
]


def reject_constant(name):
    raise ValueError(name)


def depth_of(value):
    if isinstance(value, dict):
        return 1 + max(map(depth_of, value.values()), default=0)
    if isinstance(value, list):
        return 1 + max(map(depth_of, value), default=0)
    return 0


def label(data):
    record = {"hex": data.hex(), "object": False}
    try:
        value = json.loads(data.decode("utf-8"), strict=True, parse_constant=reject_constant)
    except (UnicodeDecodeError, ValueError, RecursionError):
        return record
    if isinstance(value, dict) and data[:1] == b"{":
        record["object"] = True
        record["depth"] = depth_of(value)
    return record


def main():
    default = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "data", "json_grammar", "cases.jsonl")
    out_path = sys.argv[1] if len(sys.argv) > 1 else default
    documents = [dumped_document() for _ in range(DUMPED_DOCUMENTS)]
    documents += [written_document() for _ in range(WRITTEN_DOCUMENTS)]
    short = [d for d in documents if len(d) <= MAX_MUTATED_LENGTH]
    mutations = [mutated(rng.choice(short)) for _ in range(MUTATIONS)]
    seen, records = set(), []
    for data in documents + mutations + EDGE_CASES:
        if data not in seen:
            seen.add(data)
            records.append(label(data))
    os.makedirs(os.path.dirname(os.path.abspath(out_path)), exist_ok=True)
    with open(out_path, "w", encoding="ascii") as out:
        for record in records:
            out.write(json.dumps(record) + "\n")
    valid = sum(record["object"] for record in records)
    print(f"wrote {len(records)} cases ({valid} objects) to {out_path}")
    assert all(label(d)["object"] for d in documents), "a generated document does not parse"


if __name__ == "__main__":
    main()
