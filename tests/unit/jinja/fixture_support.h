// Helpers shared by the Jinja parity tests: reading the jinja2-generated fixtures under
// tests/data/chat_templates/ and comparing one expected record (output or error) with what
// our engine did.
#pragma once

#include <ctime>
#include <fstream>
#include <functional>
#include <iostream>
#include <iomanip>
#include <sstream>
#include <string>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "text/jinja/template.h"

namespace rackserve::jinja::testing {

inline std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw std::runtime_error("cannot read " + path);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

inline nlohmann::ordered_json read_json(const std::string& path) { return nlohmann::ordered_json::parse(read_text(path)); }

inline std::string fixture_dir() { return std::string(RACKSERVE_TEST_DATA_DIR) + "/chat_templates"; }

// The fixtures pin strftime_now() to "YYYY-MM-DDTHH:MM:SS" (their `strftime_now` field).
inline TemplateOptions pinned_options(const std::string& iso_time) {
  std::tm tm{};
  std::istringstream in(iso_time);
  in >> std::get_time(&tm, "%Y-%m-%dT%H:%M:%S");
  tm.tm_isdst = 0;
  std::tm normalized = tm;
  timegm(&normalized);  // fills tm_wday / tm_yday
  TemplateOptions options;
  options.local_time = [normalized] { return normalized; };
  return options;
}

// Runs `render` and checks it against an expected record {output} or {error: {kind, line,
// message, type}}. Messages are compared where they are part of the contract: the text of
// raise_exception() and the name in an undefined-variable error.
inline void expect_matches(const nlohmann::ordered_json& expected, const std::function<std::string()>& render) {
  if (expected.contains("output")) {
    try {
      const std::string output = render();
      EXPECT_EQ(output, expected["output"].get<std::string>());
    } catch (const std::exception& e) {
      ADD_FAILURE() << "jinja2 rendered it, we raised: " << e.what();
    }
    return;
  }
  const auto& error = expected["error"];
  try {
    const std::string output = render();
    ADD_FAILURE() << "jinja2 raised " << error.dump() << ", we rendered: " << output;
  } catch (const Error& e) {
    EXPECT_EQ(error_kind_name(e.kind()), error["kind"].get<std::string>()) << e.what() << "\nexpected " << error.dump();
    // jinja2 knows the exact line of a syntax error. For a runtime error it reports the line
    // its code generator attached to the enclosing output/statement node (for a multi-line
    // `a + b + c` chain: the line of the last operator), while we name the failing operation
    // itself; those lines are only reported when they differ.
    if (!error["line"].is_null()) {
      if (error["kind"] == "TemplateSyntaxError") {
        EXPECT_EQ(e.line(), error["line"].get<int>()) << e.what();
      } else if (e.line() != error["line"].get<int>()) {
        std::cout << "note: jinja2 blames line " << error["line"] << ", we blame " << e.what() << "\n";
      }
    }
    EXPECT_GT(e.line(), 0) << "errors must carry a line";
    EXPECT_GT(e.column(), 0) << "errors must carry a column";
    const std::string type = error["type"].get<std::string>();
    if (type == "TemplateError" || type == "UndefinedError") {
      EXPECT_EQ(e.message(), error["message"].get<std::string>());
    }
  } catch (const std::exception& e) {
    ADD_FAILURE() << "raised a non-Jinja error: " << e.what();
  }
}

}  // namespace rackserve::jinja::testing
