// Options of a template: the lexer switches (defaults are the Hugging Face chat-template
// environment: trim_blocks, lstrip_blocks, no trailing newline) and the limits that keep a
// hostile template from running away with CPU time or memory.
#pragma once

#include <cstddef>
#include <cstdint>
#include <ctime>
#include <functional>

namespace rackserve::jinja {

struct TemplateOptions {
  bool trim_blocks = true;
  bool lstrip_blocks = true;
  bool keep_trailing_newline = false;
  // false mirrors jinja2's ImmutableSandboxedEnvironment (transformers): list.append(),
  // dict.update() and friends raise SecurityError. true allows them (llama.cpp-style).
  bool allow_mutation = false;
  size_t max_output_bytes = size_t{64} << 20;  // also bounds every string and list built
  uint64_t max_steps = 50'000'000;             // loop iterations + macro calls per render
  // Broken-down local time for strftime_now(); empty means the system clock.
  std::function<std::tm()> local_time;
};

}  // namespace rackserve::jinja
