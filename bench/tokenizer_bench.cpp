// Tokenizer encoding speed: ~1 MB of mixed text (the held-out parity corpus joined with
// newlines and repeated, exactly as make_tokenizer_fixtures.py timed Hugging Face
// tokenizers), one thread, special tokens off. Prints tokens/s beside the reference
// figure recorded in tests/data/tokenizers/meta.json where there is one. That figure was
// measured on the device machine's CPU when the fixtures were made, not on this one, so
// the ratio is indicative; the token counts must agree exactly.
//
// usage: tokenizer_bench [DATA_DIR]   (default: the source tree's tests/data)
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <thread>

#include <fmt/format.h>
#include <nlohmann/json.hpp>

#include "text/tokenizer.h"

namespace {

namespace fs = std::filesystem;
using rackserve::text::EncodeOptions;
using rackserve::text::Tokenizer;

std::string read_file(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// "\n".join(corpus), repeated 1 + 2^20 // len times (the reference's construction).
std::string bench_text(const fs::path& corpus_path) {
  std::istringstream lines(read_file(corpus_path));
  std::string joined;
  std::string line;
  bool first = true;
  while (std::getline(lines, line)) {
    if (line.empty()) continue;
    if (!first) joined += '\n';
    joined += nlohmann::json::parse(line)["text"].get<std::string>();
    first = false;
  }
  std::string text;
  const size_t repeats = 1 + (size_t{1} << 20) / joined.size();
  for (size_t i = 0; i < repeats; ++i) text += joined;
  return text;
}

double seconds_since(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

}  // namespace

int main(int argc, char** argv) {
  const fs::path data = argc > 1 ? fs::path(argv[1]) : fs::path(RACKSERVE_TEST_DATA_DIR);
  const fs::path root = data / "tokenizers";
  const nlohmann::json meta = nlohmann::json::parse(read_file(root / "meta.json"));
  const std::string text = bench_text(root / "corpus.jsonl");
  fmt::print("encoding {} bytes, one thread, {} hardware threads on this machine\n", text.size(),
             std::thread::hardware_concurrency());
  fmt::print("{:<26} {:>8} {:>10} {:>10} {:>12} {:>12} {:>8}  {}\n", "tokenizer", "tokens", "cold s", "warm s",
             "tokens/s", "HF tokens/s", "ratio", "token count vs HF");
  for (const char* name : {"deepseek_v3", "glm_bytelevel", "llama_byte_fallback", "gpt2_digits", "split_behaviours",
                           "metaspace_nfkc", "kimi_tiktoken", "js_tiktoken/cl100k_base", "js_tiktoken/o200k_base"}) {
    const Tokenizer tokenizer = Tokenizer::from_directory(root / name);
    EncodeOptions options;
    options.add_special_tokens = false;
    auto start = std::chrono::steady_clock::now();
    const size_t tokens = tokenizer.encode(text, options).size();
    const double cold = seconds_since(start);  // empty word cache, as the reference run
    double warm = 1e30;
    for (int run = 0; run < 3; ++run) {
      start = std::chrono::steady_clock::now();
      tokenizer.encode(text, options);
      warm = std::min(warm, seconds_since(start));
    }
    const double rate = static_cast<double>(tokens) / cold;
    std::string reference = "-";
    std::string ratio = "-";
    std::string count = "(no reference)";
    const auto speed = meta.value("speed", nlohmann::json::object());
    if (speed.contains(name)) {
      const double hf_rate = speed[name]["tokens_per_second"].get<double>();
      reference = fmt::format("{:.0f}", hf_rate);
      ratio = fmt::format("{:.2f}x", rate / hf_rate);
      const size_t hf_tokens = speed[name]["tokens"].get<size_t>();
      count = hf_tokens == tokens ? "same" : fmt::format("DIFFERS: HF {}", hf_tokens);
    }
    fmt::print("{:<26} {:>8} {:>10.4f} {:>10.4f} {:>12.0f} {:>12} {:>8}  {}\n", name, tokens, cold, warm, rate, reference,
               ratio, count);
  }
  fmt::print("tokens/s and ratio use the cold (first) run; HF figures: tokenizers {} on the device machine's CPU\n",
             meta.value("tokenizers_version", "?"));
  return 0;
}
