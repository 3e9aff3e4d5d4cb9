// PCRE2 wrapper: compile once with the JIT, match with a per-thread match context.
#define PCRE2_CODE_UNIT_WIDTH 8
#include "text/regex.h"

#include <pcre2.h>

#include "core/error.h"
#include "text/utf8.h"

namespace rackserve::text {
namespace {

std::string pcre2_message(int code) {
  PCRE2_UCHAR buffer[256];
  pcre2_get_error_message(code, buffer, sizeof(buffer));
  return reinterpret_cast<const char*>(buffer);
}

// Per-thread scratch: match data for one ovector pair, a JIT stack that may grow to
// 8 MiB (group repeats such as `(?:(?=X)[Y])*` over long words need it), and a match
// context for the interpreter fallback with a generous heap limit.
struct MatchScratch {
  pcre2_match_data* data = pcre2_match_data_create(1, nullptr);
  pcre2_jit_stack* jit_stack = pcre2_jit_stack_create(64 * 1024, 8 * 1024 * 1024, nullptr);
  pcre2_match_context* context = pcre2_match_context_create(nullptr);
  pcre2_match_context* fallback = pcre2_match_context_create(nullptr);
  MatchScratch() {
    pcre2_jit_stack_assign(context, nullptr, jit_stack);
    pcre2_set_heap_limit(fallback, 4u * 1024 * 1024);  // KiB: 4 GiB
  }
  ~MatchScratch() {
    pcre2_match_context_free(fallback);
    pcre2_match_context_free(context);
    pcre2_jit_stack_free(jit_stack);
    pcre2_match_data_free(data);
  }
};

MatchScratch& scratch() {
  thread_local MatchScratch instance;
  return instance;
}

}  // namespace

Regex::Regex(std::string_view pattern) : source_(pattern) {
  const std::string translated = translate_regex(pattern);
  int error = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()), translated.size(),
                                   PCRE2_UTF | PCRE2_UCP, &error, &offset, nullptr);
  if (code == nullptr) {
    RS_FAIL("invalid regex {} (as PCRE2: {}): {} at offset {}", utf8::quoted(pattern), utf8::quoted(translated),
            pcre2_message(error), offset);
  }
  pcre2_jit_compile(code, PCRE2_JIT_COMPLETE);  // when the JIT is unavailable the interpreter runs
  code_ = std::shared_ptr<void>(code, [](void* p) { pcre2_code_free(static_cast<pcre2_code*>(p)); });
}

bool Regex::find(std::string_view text, size_t from, size_t& start, size_t& end) const {
  auto* code = static_cast<pcre2_code*>(code_.get());
  MatchScratch& s = scratch();
  const auto* subject = reinterpret_cast<PCRE2_SPTR>(text.data());
  int rc = pcre2_match(code, subject, text.size(), from, PCRE2_NO_UTF_CHECK, s.data, s.context);
  if (rc == PCRE2_ERROR_JIT_STACKLIMIT) {
    rc = pcre2_match(code, subject, text.size(), from, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, s.data, s.fallback);
  }
  if (rc == PCRE2_ERROR_NOMATCH) return false;
  RS_CHECK(rc >= 0, "regex {} failed on a text of {} bytes: {}", utf8::quoted(source_), text.size(), pcre2_message(rc));
  const PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(s.data);
  start = ovector[0];
  end = ovector[1];
  return true;
}

}  // namespace rackserve::text
