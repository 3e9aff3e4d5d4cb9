#!/usr/bin/env node
// Builds the js-tiktoken parity fixtures under tests/data/tokenizers/js_tiktoken/.
//
// The npm package js-tiktoken ships OpenAI's real cl100k_base and o200k_base ranks and a
// reference encoder. For each encoding this writes, in the formats rackserve loads:
//   <name>/tiktoken.model          "<base64 bytes> <rank>" per line, by rank
//   <name>/tokenizer_config.json   {"pat_str": ..., "added_tokens_decoder": {...}}
//   <name>/expected.jsonl          js-tiktoken's ids for every line of corpus.jsonl
//                                  (special tokens allowed), and "decoded" where the
//                                  decode differs from the line
// and meta.json with the package version and counts.
//
// One deliberate change: JavaScript's \s is not the Unicode White_Space property that
// tiktoken (Rust regex) and rackserve use: it includes U+FEFF and lacks U+0085. The ids
// are recorded with \s and \S in pat_str rewritten to White_Space, so they are what
// tiktoken itself gives; meta.json counts the lines where plain js-tiktoken differs.
// The pat_str written to tokenizer_config.json is the original one. Likewise decoding
// uses a TextDecoder that keeps a leading U+FEFF (the default one drops it; tiktoken
// and rackserve keep every byte).
//
// usage: cd tests/reference/node && npm ci && node ../make_js_tiktoken_fixtures.mjs \
//          ../../data/tokenizers/corpus.jsonl ../../data/tokenizers/js_tiktoken
import fs from "node:fs";
import path from "node:path";
import { createRequire } from "node:module";

const require = createRequire(path.join(process.cwd(), "package.json"));
const { Tiktoken } = require("js-tiktoken/lite");
const version = JSON.parse(fs.readFileSync(path.join(process.cwd(), "node_modules/js-tiktoken/package.json"), "utf8")).version;

const [corpusPath, outDir] = process.argv.slice(2);
if (!corpusPath || !outDir) {
  console.error("usage: make_js_tiktoken_fixtures.mjs CORPUS_JSONL OUT_DIR (run inside tests/reference/node)");
  process.exit(2);
}

const WHITE_SPACE = "\\t-\\r \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000";

// \s -> White_Space, \S -> its complement, inside and outside character classes.
function withUnicodeWhiteSpace(pattern) {
  let out = "";
  let inClass = false;
  for (let i = 0; i < pattern.length; ++i) {
    const c = pattern[i];
    if (c === "\\") {
      const next = pattern[i + 1];
      if (next === "s") out += inClass ? WHITE_SPACE : `[${WHITE_SPACE}]`;
      else if (next === "S" && !inClass) out += `[^${WHITE_SPACE}]`;
      else if (next === "S") throw new Error("\\S inside a class is not handled");
      else out += c + next;
      ++i;
      continue;
    }
    if (c === "[") inClass = true;
    if (c === "]") inClass = false;
    out += c;
  }
  return out;
}

const corpus = fs.readFileSync(corpusPath, "utf8").split("\n").filter(Boolean).map((line) => JSON.parse(line).text);
const meta = { js_tiktoken_version: version, node: process.version, corpus_lines: corpus.length, encodings: {} };

for (const name of ["cl100k_base", "o200k_base"]) {
  const ranks = require(`js-tiktoken/ranks/${name}`);
  const plain = new Tiktoken(ranks);
  const reference = new Tiktoken({ ...ranks, pat_str: withUnicodeWhiteSpace(ranks.pat_str) });
  reference.textDecoder = new TextDecoder("utf-8", { ignoreBOM: true });
  const dir = path.join(outDir, name);
  fs.mkdirSync(dir, { recursive: true });

  const byRank = [...reference.textMap.entries()].sort((a, b) => a[0] - b[0]);
  fs.writeFileSync(path.join(dir, "tiktoken.model"),
                   byRank.map(([rank, bytes]) => `${Buffer.from(bytes).toString("base64")} ${rank}\n`).join(""));
  const added = {};
  for (const [content, id] of Object.entries(ranks.special_tokens)) added[id] = { content, special: true };
  fs.writeFileSync(path.join(dir, "tokenizer_config.json"),
                   JSON.stringify({ pat_str: ranks.pat_str, added_tokens_decoder: added }, null, 1) + "\n");

  let tokens = 0;
  let jsWhitespaceLines = 0;
  const records = corpus.map((text) => {
    const ids = reference.encode(text, "all");
    tokens += ids.length;
    if (plain.encode(text, "all").join() !== ids.join()) ++jsWhitespaceLines;
    const record = { ids };
    const decoded = reference.decode(ids);
    if (decoded !== text) record.decoded = decoded;
    return record;
  });
  fs.writeFileSync(path.join(dir, "expected.jsonl"), records.map((r) => JSON.stringify(r) + "\n").join(""));
  meta.encodings[name] = { ranks: byRank.length, tokens, lines_where_js_whitespace_differs: jsWhitespaceLines };
  console.log(name, meta.encodings[name]);
}
fs.writeFileSync(path.join(outDir, "meta.json"), JSON.stringify(meta, null, 1) + "\n");
