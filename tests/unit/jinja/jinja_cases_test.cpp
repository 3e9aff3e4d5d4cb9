// Focused engine cases (tests/reference/jinja_feature_cases.py): one feature per case,
// expected output or error (kind, line) recorded from jinja2 in the Hugging Face environment.
#include <gtest/gtest.h>

#include "fixture_support.h"

namespace rackserve::jinja {
namespace {

using testing::expect_matches;
using testing::fixture_dir;
using testing::read_json;

const nlohmann::ordered_json& cases_file() {
  static const nlohmann::ordered_json file = read_json(fixture_dir() + "/jinja_cases.json");
  return file;
}

std::vector<std::string> case_names() {
  std::vector<std::string> names;
  for (const auto& c : cases_file()["cases"]) names.push_back(c["name"].get<std::string>());
  return names;
}

class JinjaCase : public ::testing::TestWithParam<std::string> {};

TEST_P(JinjaCase, MatchesJinja2) {
  for (const auto& c : cases_file()["cases"]) {
    if (c["name"] != GetParam()) continue;
    SCOPED_TRACE(c["template"].get<std::string>());
    const TemplateOptions options = testing::pinned_options(cases_file()["strftime_now"].get<std::string>());
    expect_matches(c, [&] { return Template(c["template"].get<std::string>(), options).render(c["context"]); });
    return;
  }
  FAIL() << "case not found";
}

INSTANTIATE_TEST_SUITE_P(Jinja2, JinjaCase, ::testing::ValuesIn(case_names()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return info.param; });

TEST(JinjaCases, SuiteIsComplete) { EXPECT_GE(case_names().size(), 100u); }

}  // namespace
}  // namespace rackserve::jinja
