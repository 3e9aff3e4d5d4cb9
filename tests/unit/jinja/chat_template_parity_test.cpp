// Every chat template under the shared models directory rendered for every conversation of
// tests/data/chat_templates/conversations.json through ChatTemplate, byte for byte against
// jinja2 in the Hugging Face environment (tests/reference/make_template_fixtures.py). A
// template we cannot parse or render is a failing test.
#include <filesystem>

#include <gtest/gtest.h>

#include "fixture_support.h"
#include "template_fixtures.h"
#include "text/chat_template.h"

namespace rackserve::text {
namespace {

namespace fs = std::filesystem;
using jinja::testing::expect_matches;
using jinja::testing::fixture_dir;
using jinja::testing::read_json;
using jinja::testing::read_text;
using testing::load_template_source;
using testing::template_ids;

std::string sanitize(std::string name) {
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

class TemplateParity : public ::testing::TestWithParam<std::string> {};

TEST_P(TemplateParity, AllConversationsMatchJinja2) {
  const auto fixture = read_json(fixture_dir() + "/templates/" + GetParam() + ".json");
  const auto conversations = read_json(fixture_dir() + "/conversations.json");
  ASSERT_EQ(fixture["results"].size(), conversations["conversations"].size()) << "regenerate the fixtures";
  SpecialTokens tokens;
  tokens.bos_token = fixture["bos_token"].get<std::string>();
  tokens.eos_token = fixture["eos_token"].get<std::string>();
  std::unique_ptr<ChatTemplate> chat;
  try {
    chat = std::make_unique<ChatTemplate>(load_template_source(fixture), tokens,
                                          jinja::testing::pinned_options(fixture["strftime_now"].get<std::string>()));
  } catch (const std::exception& e) {
    FAIL() << "cannot load " << fixture["file"] << ": " << e.what();
  }
  size_t index = 0;
  for (const auto& conversation : conversations["conversations"]) {
    const auto& expected = fixture["results"][index++];
    ASSERT_EQ(expected["conversation"], conversation["name"]);
    SCOPED_TRACE(conversation["name"].get<std::string>());
    ChatRequest request;
    request.messages = conversation["messages"];
    if (conversation.contains("tools")) request.tools = conversation["tools"];
    request.add_generation_prompt = conversation["add_generation_prompt"].get<bool>();
    if (conversation.contains("kwargs")) request.kwargs = conversation["kwargs"];
    expect_matches(expected, [&] { return chat->render(request); });
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, TemplateParity, ::testing::ValuesIn(template_ids()),
                         [](const ::testing::TestParamInfo<std::string>& info) { return sanitize(info.param); });

// Every template in the shared directory has a fixture (a new template without one fails).
TEST(TemplateParity, EveryTemplateHasFixtures) {
  const fs::path shared(RACKSERVE_SHARED_MODELS_DIR);
  size_t templates = 0;
  for (const auto& dir : fs::directory_iterator(shared)) {
    if (!dir.is_directory()) continue;
    for (const auto& file : fs::directory_iterator(dir.path())) {
      const std::string name = file.path().filename().string();
      bool is_template = file.path().extension() == ".jinja";
      if (name.rfind("tokenizer_config", 0) == 0 && file.path().extension() == ".json") {
        is_template = nlohmann::ordered_json::parse(read_text(file.path().string())).contains("chat_template");
      }
      if (!is_template) continue;
      ++templates;
      const std::string id = dir.path().filename().string() + "__" + name;
      EXPECT_TRUE(fs::exists(fixture_dir() + "/templates/" + id + ".json")) << "no fixture for " << id;
    }
  }
  EXPECT_GE(templates, 9u);
  EXPECT_GE(read_json(fixture_dir() + "/conversations.json")["conversations"].size(), 15u);
}

}  // namespace
}  // namespace rackserve::text
