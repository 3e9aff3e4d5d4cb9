// Tool-call parsing against the official chat templates: every record of
// tests/data/tool_calls/ (written by tests/reference/make_tool_call_fixtures.py with
// jinja2) is the text a model generates for an assistant message with tool calls, as the
// template renders it, and the calls and content that message holds. The parser must give
// those back from the text in one piece and in every other split; detection must name the
// format of every template.
#include <algorithm>
#include <filesystem>
#include <set>

#include <gtest/gtest.h>

#include "fixture_files.h"
#include "tool_call_testing.h"

namespace rackserve::text {
namespace {

namespace fs = std::filesystem;
using testing::MergedParse;

fs::path tool_call_data_dir() { return fs::path(RACKSERVE_TEST_DATA_DIR) / "tool_calls"; }

std::vector<fs::path> fixture_files() {
  std::vector<fs::path> files;
  for (const auto& entry : fs::directory_iterator(tool_call_data_dir())) files.push_back(entry.path());
  std::sort(files.begin(), files.end());
  return files;
}

nlohmann::json read_fixture(const fs::path& path) { return nlohmann::json::parse(testing::read_text_file(path)); }

struct RecordId {
  fs::path file;
  size_t record = 0;
  std::string label;
};

void PrintTo(const RecordId& id, std::ostream* out) { *out << id.label; }

std::vector<RecordId> all_records() {
  std::vector<RecordId> records;
  for (const auto& file : fixture_files()) {
    const auto fixture = read_fixture(file);
    for (size_t index = 0; index < fixture["records"].size(); ++index) {
      const auto& record = fixture["records"][index];
      std::string label = file.stem().string() + "__" + record["conversation"].get<std::string>() + "_" +
                          std::to_string(record["message"].get<int>());
      for (char& c : label) {
        if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
      }
      records.push_back({file, index, label});
    }
  }
  return records;
}

class ToolCallFixture : public ::testing::TestWithParam<RecordId> {
 protected:
  void SetUp() override {
    const auto fixture = read_fixture(GetParam().file);
    record_ = fixture["records"][GetParam().record];
    const auto format = tool_call_format_named(fixture["format"].get<std::string>());
    ASSERT_TRUE(format) << fixture["format"];
    format_ = *format;
    answer_ = record_["text"].get<std::string>().substr(record_["answer_start"].get<size_t>());
    tools_ = record_["tools"];
  }

  nlohmann::json record_;
  ToolCallFormat format_ = ToolCallFormat::DeepSeekV3;
  std::string answer_;  // the text after the reasoning, which the parser sees
  nlohmann::json tools_;
};

TEST_P(ToolCallFixture, OnePieceGivesTheTemplatesCallsAndContent) {
  const MergedParse parsed = testing::parse_whole(format_, answer_, tools_);
  SCOPED_TRACE(answer_);
  EXPECT_EQ(parsed.content, record_["content"].get<std::string>());
  const auto& expected = record_["calls"];
  ASSERT_EQ(parsed.calls.size(), expected.size()) << parsed;
  for (size_t index = 0; index < expected.size(); ++index) {
    const auto& call = parsed.calls[index];
    EXPECT_EQ(call.name, expected[index]["name"].get<std::string>());
    EXPECT_EQ(call.id, expected[index].value("id", ""));
    const auto arguments = nlohmann::json::parse(call.arguments, nullptr, false);
    ASSERT_FALSE(arguments.is_discarded()) << "arguments are not JSON: " << call.arguments;
    EXPECT_EQ(arguments, expected[index]["arguments"]) << call.arguments;
  }
}

TEST_P(ToolCallFixture, EverySplitGivesTheSameResult) {
  const MergedParse whole = testing::parse_whole(format_, answer_, tools_);
  testing::expect_split_independent(format_, tools_, answer_, whole);
}

INSTANTIATE_TEST_SUITE_P(Templates, ToolCallFixture, ::testing::ValuesIn(all_records()),
                         [](const ::testing::TestParamInfo<RecordId>& info) { return info.param.label; });

// The template text as the fixture generator read it.
std::string template_source(const nlohmann::json& fixture) {
  const fs::path file = fs::path(RACKSERVE_SHARED_MODELS_DIR) / fixture["file"].get<std::string>();
  const std::string text = testing::read_text_file(file);
  if (fixture["field"].is_null()) return text;
  const auto field = nlohmann::json::parse(text)[fixture["field"].get<std::string>()];
  if (field.is_string()) return field.get<std::string>();
  for (const auto& entry : field) {
    if (entry["name"] == fixture["name"]) return entry["template"].get<std::string>();
  }
  ADD_FAILURE() << "no template named " << fixture["name"] << " in " << file;
  return {};
}

TEST(ToolCallFormatDetection, EveryTemplateDetectsToItsFamilysFormat) {
  std::set<std::string> formats;
  for (const auto& file : fixture_files()) {
    const auto fixture = read_fixture(file);
    const auto detected = detect_tool_call_format(template_source(fixture));
    ASSERT_TRUE(detected) << fixture["file"];
    EXPECT_EQ(tool_call_format_name(*detected), fixture["format"].get<std::string>()) << fixture["file"];
    formats.insert(fixture["format"].get<std::string>());
  }
  // DeepSeek-V3 and V3.1 are told apart, and every format has a template.
  EXPECT_EQ(formats, (std::set<std::string>{"deepseek_v3", "deepseek_v31", "kimi_k2", "glm45", "minimax_m2"}));
}

TEST(ToolCallFormatDetection, EveryChatTemplateHasToolCallFixtures) {
  size_t templates = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(RACKSERVE_TEST_DATA_DIR) / "chat_templates" / "templates")) {
    ++templates;
    EXPECT_TRUE(fs::exists(tool_call_data_dir() / entry.path().filename())) << entry.path().filename();
  }
  EXPECT_GE(templates, 13u);
}

TEST(ToolCallFormatDetection, TemplatesWithoutKnownMarkupAreNotDetected) {
  EXPECT_FALSE(detect_tool_call_format(""));
  EXPECT_FALSE(detect_tool_call_format("{% for m in messages %}{{ m.content }}{% endfor %}"));
  EXPECT_FALSE(detect_tool_call_format("<tool_call>{{ name }}</tool_call>"));  // Hermes-style JSON calls
}

TEST(ToolCallFormatNames, RoundTrip) {
  for (auto format : {ToolCallFormat::DeepSeekV3, ToolCallFormat::DeepSeekV31, ToolCallFormat::KimiK2,
                      ToolCallFormat::Glm45, ToolCallFormat::MiniMaxM2}) {
    EXPECT_EQ(tool_call_format_named(tool_call_format_name(format)), format) << tool_call_format_name(format);
  }
  EXPECT_EQ(tool_call_format_name(ToolCallFormat::DeepSeekV31), "deepseek_v31");
  EXPECT_EQ(tool_call_format_name(ToolCallFormat::Glm45), "glm45");
  EXPECT_FALSE(tool_call_format_named("hermes"));
  EXPECT_FALSE(tool_call_format_named(""));
}

}  // namespace
}  // namespace rackserve::text
