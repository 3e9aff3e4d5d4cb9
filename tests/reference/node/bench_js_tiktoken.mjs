// js-tiktoken encoding speed on the tokenizer bench's text (the parity corpus joined with
// "\n", repeated 1 + 2^20 // length times; the same construction as bench/tokenizer_bench),
// one thread, for cl100k_base and o200k_base: the reference figure for our tiktoken-format
// tokenizer measured on the same machine. Run `npm ci` here first.
//
// usage: node bench_js_tiktoken.mjs CORPUS_JSONL
import { readFileSync } from "node:fs";
import { Tiktoken } from "js-tiktoken/lite";
import cl100k_base from "js-tiktoken/ranks/cl100k_base";
import o200k_base from "js-tiktoken/ranks/o200k_base";

const lines = readFileSync(process.argv[2], "utf8").split("\n").filter((line) => line.length > 0);
const joined = lines.map((line) => JSON.parse(line).text).join("\n");
const joinedBytes = Buffer.byteLength(joined, "utf8");
const text = joined.repeat(1 + Math.floor((1 << 20) / joinedBytes));
const megabytes = Buffer.byteLength(text, "utf8") / 1e6;

for (const [name, ranks] of [["cl100k_base", cl100k_base], ["o200k_base", o200k_base]]) {
  const encoder = new Tiktoken(ranks);
  encoder.encode(joined, "all");  // warm-up (JIT); special-token strings match as specials, as in our bench
  const start = process.hrtime.bigint();
  const tokens = encoder.encode(text, "all").length;
  const seconds = Number(process.hrtime.bigint() - start) / 1e9;
  console.log(`js-tiktoken ${name}: ${tokens} tokens from ${megabytes.toFixed(2)} MB in ${seconds.toFixed(3)} s = ` +
              `${(tokens / seconds / 1e6).toFixed(2)} M tokens/s`);
}
