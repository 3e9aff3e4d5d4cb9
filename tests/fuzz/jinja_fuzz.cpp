// libFuzzer target for the Jinja engine (build with -DRACKSERVE_FUZZ=ON and clang). The
// input is a template source, optionally followed by a NUL byte and a JSON render context;
// without a usable context a small chat (messages, tools, add_generation_prompt) is used.
// Every template must parse and render to a result or a jinja::Error within the limits:
// any other exception, a crash, a hang or a sanitizer report is a finding. Rendering runs
// under both sandbox modes (immutable as in transformers, and mutation allowed).
#include <cstdint>
#include <cstdlib>
#include <cstdio>
#include <string>
#include <string_view>

#include <nlohmann/json.hpp>

#include "text/jinja/template.h"

namespace {

const nlohmann::ordered_json& default_context() {
  static const nlohmann::ordered_json context = nlohmann::ordered_json::parse(R"({
    "messages": [
      {"role": "system", "content": "Be brief."},
      {"role": "user", "content": "Weather in \"Paris\"? 天气 🤖"},
      {"role": "assistant", "content": "", "reasoning_content": "call the tool",
       "tool_calls": [{"id": "c1", "type": "function",
                       "function": {"name": "get_weather", "arguments": {"city": "Paris"}}}]},
      {"role": "tool", "tool_call_id": "c1", "content": "sunny"},
      {"role": "user", "content": [{"type": "text", "text": "thanks"}]}
    ],
    "tools": [{"type": "function", "function": {"name": "get_weather", "description": "d",
               "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
    "add_generation_prompt": true, "bos_token": "<s>", "eos_token": "</s>", "enable_thinking": false
  })");
  return context;
}

void run(std::string_view source, const nlohmann::ordered_json& context, bool allow_mutation) {
  rackserve::jinja::TemplateOptions options;
  options.allow_mutation = allow_mutation;
  options.max_steps = 20'000;
  options.max_output_bytes = 1 << 18;
  options.local_time = [] { return std::tm{}; };
  try {
    const rackserve::jinja::Template parsed(source, options);
    const std::string output = parsed.render(context);
    if (output.size() > options.max_output_bytes) {
      std::fprintf(stderr, "output over the limit: %zu bytes\n", output.size());
      std::abort();
    }
  } catch (const rackserve::jinja::Error& e) {
    if (e.line() <= 0 || e.column() <= 0) {
      // Context conversion errors have no template location; all others must.
      if (std::string_view(e.what()).find("JSON") == std::string_view::npos) {
        std::fprintf(stderr, "error without location: %s\n", e.what());
        std::abort();
      }
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  const size_t split = input.find('\0');
  const std::string_view source = input.substr(0, split);
  nlohmann::ordered_json context = default_context();
  if (split != std::string_view::npos) {
    auto parsed = nlohmann::ordered_json::parse(input.substr(split + 1), nullptr, false);
    if (!parsed.is_discarded() && parsed.is_object()) context = std::move(parsed);
  }
  run(source, context, false);
  run(source, context, true);
  return 0;
}
