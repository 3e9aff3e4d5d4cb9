#!/usr/bin/env python3
"""Reference cases for JsonSchemaGrammar (tests/unit/engine/json_schema_grammar_test.cpp).

Writes tests/data/json_schema/schemas.json (an array of schemas) and cases.jsonl (one
{"schema", "text", "expect"} per line). Labels come from the `jsonschema` package (Draft 2020-12) after json.loads, not
from the grammar under test:
  accept  documents generated here in the grammar's canonical shape (declared properties in
          declaration order, at most 2 whitespace bytes in a row): valid, must be accepted whole;
  reject  text json.loads refuses, or jsonschema.validate refuses: must not be accepted whole;
  either  valid JSON and valid under the schema, but possibly outside the stricter language
          of the grammar (property order, whitespace runs, escapes): not checked.
Run: python3 tests/reference/make_json_schema_cases.py (needs jsonschema 4.x); deterministic
(fixed seed).
"""
import json
import pathlib
import random

import jsonschema

OUT_DIR = pathlib.Path(__file__).resolve().parents[1] / "data" / "json_schema"

SCHEMAS = [
    {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
     "required": ["name", "age"], "additionalProperties": False},
    {"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}, "c": {"type": "boolean"}},
     "required": ["b"]},
    {"type": "object", "properties": {
        "items": {"type": "array", "minItems": 1, "maxItems": 3, "items": {
            "type": "object", "properties": {"id": {"type": "integer"}, "tags": {"type": "array", "items": {"type": "string"}}},
            "required": ["id", "tags"], "additionalProperties": False}}},
     "required": ["items"], "additionalProperties": False},
    {"type": "object", "properties": {"level": {"enum": ["a", "ab", "abc", "b"]}, "kind": {"const": "fixed"}},
     "required": ["level", "kind"], "additionalProperties": False},
    {"type": "object", "properties": {"n": {"enum": [1, 12, 1.5, -3, None, True]}}, "required": ["n"],
     "additionalProperties": False},
    {"type": "object", "properties": {"s": {"type": ["string", "null"]}, "t": {"type": ["integer", "boolean"]}},
     "required": ["s", "t"], "additionalProperties": False},
    {"type": "object", "properties": {
        "owner": {"anyOf": [{"type": "object", "properties": {"x": {"type": "integer"}}, "required": ["x"],
                             "additionalProperties": False}, {"type": "null"}]},
        "value": {"anyOf": [{"type": "string"}, {"type": "number"}]}},
     "required": ["owner", "value"], "additionalProperties": False},
    {"$defs": {"node": {"type": "object", "properties": {"label": {"type": "string"}, "children": {
        "type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/node"}}}, "required": ["label"],
        "additionalProperties": False}},
     "type": "object", "properties": {"root": {"$ref": "#/$defs/node"}}, "required": ["root"], "additionalProperties": False},
    {"definitions": {"point": {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}},
                               "required": ["x", "y"], "additionalProperties": False}},
     "type": "object", "properties": {"from": {"$ref": "#/definitions/point"}, "to": {"$ref": "#/definitions/point"}},
     "required": ["from", "to"], "additionalProperties": False},
    {"type": "object", "properties": {"grid": {"type": "array", "minItems": 2, "maxItems": 2, "items": {
        "type": "array", "minItems": 2, "maxItems": 2, "items": {"type": "integer"}}}},
     "required": ["grid"], "additionalProperties": False},
    {"type": "object", "properties": {k: {"type": "string"} for k in ["p", "q", "r", "s"]}, "additionalProperties": False},
    {"type": "object", "properties": {}, "additionalProperties": False},
    {"type": "object", "properties": {"naïve": {"type": "string"}, "a/b": {"type": "boolean"}, "quote\"d": {"type": "null"}},
     "required": ["naïve", "a/b", "quote\"d"], "additionalProperties": False},
    {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "integer"}, "z": {"type": "null"}},
     "required": ["x", "y", "z"], "additionalProperties": False},
    {"type": "object", "properties": {"only": {"type": "string", "enum": ["x", 1, None]}, "flag": {"type": "boolean"}},
     "required": ["only", "flag"], "additionalProperties": False},
    {"type": "object", "properties": {"a": {"type": "object", "properties": {"b": {"type": "object", "properties": {
        "c": {"type": "object", "properties": {"d": {"type": "array", "items": {"type": "object", "properties": {
            "e": {"type": "integer"}}, "required": ["e"], "additionalProperties": False}}},
            "required": ["d"], "additionalProperties": False}}, "required": ["c"], "additionalProperties": False}},
        "required": ["b"], "additionalProperties": False}}, "required": ["a"], "additionalProperties": False},
    # Discriminated unions (anyOf of objects told apart by their first property's const/enum).
    {"type": "object", "properties": {"pet": {"anyOf": [
        {"type": "object", "properties": {"kind": {"const": "cat"}, "lives": {"type": "integer"}},
         "required": ["kind", "lives"], "additionalProperties": False},
        {"type": "object", "properties": {"kind": {"const": "catfish"}, "fins": {"type": "integer"}},
         "required": ["kind"], "additionalProperties": False},
        {"type": "object", "properties": {"kind": {"enum": ["dog", "wolf"]}, "good": {"type": "boolean"},
                                          "name": {"type": "string"}},
         "required": ["kind", "good"], "additionalProperties": False},
        {"type": "null"}]}}, "required": ["pet"], "additionalProperties": False},
    {"type": "object", "properties": {"calls": {"type": "array", "minItems": 1, "maxItems": 3, "items": {"anyOf": [
        {"type": "object", "properties": {"name": {"const": "get_weather"}, "arguments": {
            "type": "object", "properties": {"city": {"type": "string"}, "unit": {"enum": ["c", "f"]}},
            "required": ["city"], "additionalProperties": False}}, "required": ["name", "arguments"],
         "additionalProperties": False},
        {"type": "object", "properties": {"name": {"const": "get_time"}, "arguments": {
            "type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"],
            "additionalProperties": False}}, "required": ["name", "arguments"], "additionalProperties": False},
        {"type": "object", "properties": {"name": {"const": "get"}, "arguments": {
            "type": "object", "properties": {}, "additionalProperties": False}}, "required": ["name", "arguments"],
         "additionalProperties": False}]}}},
     "required": ["calls"], "additionalProperties": False},
    {"$defs": {"circle": {"type": "object", "properties": {"shape": {"const": "circle"}, "r": {"type": "number"}},
                          "required": ["shape", "r"], "additionalProperties": False},
               "square": {"type": "object", "properties": {"shape": {"const": "square"}, "side": {"type": "number"}},
                          "required": ["shape", "side"], "additionalProperties": False},
               "group": {"type": "object", "properties": {"shape": {"const": "group"}, "parts": {
                   "type": "array", "maxItems": 2, "items": {"$ref": "#/$defs/any"}}},
                         "required": ["shape", "parts"], "additionalProperties": False},
               "any": {"anyOf": [{"anyOf": [{"$ref": "#/$defs/circle"}, {"$ref": "#/$defs/square"}]},
                                 {"$ref": "#/$defs/group"}]}},
     "type": "object", "properties": {"drawing": {"$ref": "#/$defs/any"}, "scale": {"type": ["number", "null"]}},
     "required": ["drawing", "scale"], "additionalProperties": False},
    # String lengths (code points) and integer bounds.
    {"type": "object", "properties": {
        "code": {"type": "string", "minLength": 2, "maxLength": 3},
        "name": {"type": ["string", "null"], "minLength": 1},
        "tag": {"type": "string", "maxLength": 1},
        "word": {"enum": ["a", "bb", "ccc", 7], "minLength": 2}},
     "required": ["code", "name", "tag", "word"], "additionalProperties": False},
    {"type": "object", "properties": {
        "age": {"type": "integer", "minimum": 0, "maximum": 130},
        "delta": {"type": "integer", "minimum": -15, "exclusiveMaximum": 12},
        "big": {"type": "integer", "exclusiveMinimum": 999, "maximum": 100000},
        "neg": {"type": "integer", "maximum": -20},
        "level": {"enum": [1, 5, 10, "x"], "minimum": 5}},
     "required": ["age", "delta", "big", "neg", "level"], "additionalProperties": False},
]

STRING_PIECES = ["a", "Z", " ", "é", "日本", "😀", "\\n", "\\\"", "\\\\", "\\u00e9", "\\/", "0", "{", "]", ",", ":"]


def whitespace(rng):
    return rng.choice(["", "", "", " ", "\n", " \t", "  "])


def gen_string(rng, schema=None):
    low = (schema or {}).get("minLength", 0)
    high = (schema or {}).get("maxLength", 1 << 30)
    while True:  # rejection sampling on the decoded length
        text = '"' + "".join(rng.choice(STRING_PIECES) for _ in range(rng.randint(0, 5))) + '"'
        if low <= len(json.loads(text)) <= high:
            return text


def gen_integer(rng, schema):
    low = schema.get("minimum", -99999)
    if "exclusiveMinimum" in schema:
        low = schema["exclusiveMinimum"] + 1
    high = schema.get("maximum", 99999)
    if "exclusiveMaximum" in schema:
        high = schema["exclusiveMaximum"] - 1
    return str(rng.choice([low, high, rng.randint(low, high)]))


def gen_number(rng, integer):
    text = rng.choice(["-", ""]) + rng.choice(["0", str(rng.randint(1, 99999))])
    if not integer:
        if rng.random() < 0.5:
            text += "." + str(rng.randint(0, 999))
        if rng.random() < 0.3:
            text += rng.choice("eE") + rng.choice(["", "+", "-"]) + str(rng.randint(0, 30))
    return text


def gen(schema, root, rng, depth=0):
    """A canonical document (text) valid under `schema`."""
    if "$ref" in schema:
        section, name = schema["$ref"][2:].split("/")
        return gen(root[section][name], root, rng, depth)
    if "anyOf" in schema:
        return gen(rng.choice(schema["anyOf"]), root, rng, depth)
    if "const" in schema or "enum" in schema:
        values = [schema["const"]] if "const" in schema else schema["enum"]
        values = [v for v in values if jsonschema.Draft202012Validator(
            {k: schema[k] for k in schema if k not in ("enum", "const")}).is_valid(v)]
        return json.dumps(rng.choice(values), ensure_ascii=False)
    kind = schema["type"]
    if isinstance(kind, list):
        kind = rng.choice(kind)
    if kind == "string":
        return gen_string(rng, schema)
    if kind == "integer" and any(k in schema for k in ("minimum", "maximum", "exclusiveMinimum", "exclusiveMaximum")):
        return gen_integer(rng, schema)
    if kind in ("number", "integer"):
        return gen_number(rng, kind == "integer")
    if kind == "boolean":
        return rng.choice(["true", "false"])
    if kind == "null":
        return "null"
    if kind == "array":
        low = schema.get("minItems", 0)
        high = schema.get("maxItems", 3)
        if depth > 3:
            high = low
        count = rng.randint(low, high)
        parts = [whitespace(rng) + gen(schema["items"], root, rng, depth + 1) + whitespace(rng) for _ in range(count)]
        return "[" + ",".join(parts) + (whitespace(rng) if not parts else "") + "]"
    if kind == "object":
        required = set(schema.get("required", []))
        parts = []
        for key, sub in schema.get("properties", {}).items():
            if key in required or rng.random() < 0.6:
                parts.append(whitespace(rng) + json.dumps(key, ensure_ascii=False) + whitespace(rng) + ":" +
                             whitespace(rng) + gen(sub, root, rng, depth + 1) + whitespace(rng))
        return "{" + ",".join(parts) + (whitespace(rng) if not parts else "") + "}"
    raise ValueError(kind)


def label(schema, text):
    def reject_constant(name):
        raise ValueError(name)
    try:
        value = json.loads(text, parse_constant=reject_constant)
    except (ValueError, RecursionError):
        return "reject"
    try:
        jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)
    except jsonschema.ValidationError:
        return "reject"
    return "either"


MUTATION_BYTES = list('{}[]":,. 0123456789-eEtfnulrsaxyz\\') + ["\x01", "é", "\xff"]


def mutate(text, rng, schema, root):
    choice = rng.randrange(7)
    at = rng.randrange(len(text) + 1)
    if choice == 0 and text:  # delete a character
        at = min(at, len(text) - 1)
        return text[:at] + text[at + 1:]
    if choice == 1:  # insert a character
        return text[:at] + rng.choice(MUTATION_BYTES) + text[at:]
    if choice == 2 and len(text) > 1:  # swap two neighbours
        at = min(at, len(text) - 2)
        return text[:at] + text[at + 1] + text[at] + text[at + 2:]
    if choice == 3:  # truncate: a prefix, never whole
        return text[:rng.randrange(len(text))]
    value = json.loads(text)
    if choice == 4 and value:  # drop a property
        value.pop(rng.choice(list(value)))
        return json.dumps(value, ensure_ascii=False)
    if choice == 5:  # add an undeclared property
        value["extra"] = 1
        return json.dumps(value, ensure_ascii=False)
    if value:  # retype a property
        key = rng.choice(list(value))
        value[key] = rng.choice(["text", 3, 2.5, True, None, [], {}])
        return json.dumps(value, ensure_ascii=False)
    return text + "x"


def main():
    rng = random.Random(20240601)
    with open(OUT_DIR / "schemas.json", "w", encoding="utf-8") as out:
        json.dump(SCHEMAS, out, ensure_ascii=False, indent=1)
        out.write("\n")
    cases = []
    for index, schema in enumerate(SCHEMAS):
        jsonschema.Draft202012Validator.check_schema(schema)
        valid = []
        for _ in range(10):
            text = gen(schema, schema, rng) + rng.choice(["", "", " ", "\n"])
            value = json.loads(text)
            jsonschema.validate(value, schema, cls=jsonschema.Draft202012Validator)  # the generator's own check
            valid.append(text)
            cases.append({"schema": index, "text": text, "expect": "accept"})
        for _ in range(30):
            text = mutate(rng.choice(valid), rng, schema, schema)
            if text in valid:
                continue
            cases.append({"schema": index, "text": text, "expect": label(schema, text)})
    with open(OUT_DIR / "cases.jsonl", "w", encoding="utf-8") as out:
        for case in cases:
            out.write(json.dumps(case, ensure_ascii=False) + "\n")
    counts = {}
    for case in cases:
        counts[case["expect"]] = counts.get(case["expect"], 0) + 1
    print(len(cases), "cases", counts)


if __name__ == "__main__":
    main()
