// ChatTemplate loading: chat_template.jinja, tokenizer_config.json (string and list of named
// templates), the --chat-template override, special tokens, and request validation.
#include <filesystem>
#include <fstream>

#include <gtest/gtest.h>

#include "core/error.h"
#include "text/chat_template.h"

namespace rackserve::text {
namespace {

namespace fs = std::filesystem;

class ChatTemplateLoading : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("rackserve_chat_template_" + std::to_string(::getpid()) + "_" +
                                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(dir_);
    fs::create_directories(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }
  void write(const std::string& name, const std::string& text) { std::ofstream(dir_ / name, std::ios::binary) << text; }

  static ChatRequest user(const std::string& text) {
    ChatRequest request;
    request.messages = nlohmann::ordered_json::array({{{"role", "user"}, {"content", text}}});
    return request;
  }

  fs::path dir_;
};

constexpr const char* kEcho =
    "{{ bos_token }}{% for m in messages %}<{{ m.role }}>{{ m.content }}{% endfor %}"
    "{% if add_generation_prompt %}<assistant>{% endif %}{{ tools is none }}{{ documents is none }}";

TEST_F(ChatTemplateLoading, JinjaFileWinsOverTokenizerConfig) {
  write("chat_template.jinja", kEcho);
  write("tokenizer_config.json", R"({"bos_token": "<s>", "eos_token": {"content": "</s>"}, "chat_template": "X"})");
  const ChatTemplate chat = ChatTemplate::from_model_dir(dir_);
  EXPECT_EQ(chat.render(user("hi")), "<s><user>hi<assistant>TrueTrue");
  EXPECT_EQ(chat.special_tokens().eos_token, "</s>");
}

TEST_F(ChatTemplateLoading, TokenizerConfigStringAndNamedList) {
  write("tokenizer_config.json", R"({"chat_template": "plain"})");
  EXPECT_EQ(ChatTemplate::from_model_dir(dir_).render(user("x")), "plain");
  write("tokenizer_config.json",
        R"({"chat_template": [{"name": "default", "template": "D"}, {"name": "tool_use", "template": "T"}]})");
  EXPECT_EQ(find_chat_template(dir_).text, "D");
  EXPECT_EQ(find_chat_template(dir_, std::nullopt, std::nullopt, true).text, "T");
  EXPECT_EQ(find_chat_template(dir_, std::nullopt, std::string("tool_use")).text, "T");
  EXPECT_THROW(find_chat_template(dir_, std::nullopt, std::string("rag")), Error);
}

TEST_F(ChatTemplateLoading, OverrideFileAndMissingTemplate) {
  EXPECT_THROW(ChatTemplate::from_model_dir(dir_), Error);
  write("custom.jinja", "custom {{ messages|length }}");
  EXPECT_EQ(ChatTemplate::from_model_dir(dir_, dir_ / "custom.jinja").render(user("x")), "custom 1");
  EXPECT_THROW(ChatTemplate::from_model_dir(dir_, dir_ / "absent.jinja"), Error);
}

TEST_F(ChatTemplateLoading, KwargsToolsAndGenerationPrompt) {
  write("chat_template.jinja",
        "{{ enable_thinking|default('unset') }}|{{ tools|length if tools else 'none' }}|{{ add_generation_prompt }}");
  const ChatTemplate chat = ChatTemplate::from_model_dir(dir_);
  ChatRequest request = user("x");
  EXPECT_EQ(chat.render(request), "unset|none|True");
  request.kwargs = {{"enable_thinking", false}};
  request.tools = nlohmann::ordered_json::array({{{"type", "function"}}});
  request.add_generation_prompt = false;
  EXPECT_EQ(chat.render(request), "False|1|False");
  request.kwargs = {{"messages", 1}};
  EXPECT_THROW(chat.render(request), Error);
}

TEST_F(ChatTemplateLoading, TemplateErrorsPropagate) {
  write("chat_template.jinja", "{{ raise_exception('only user messages') }}");
  try {
    ChatTemplate::from_model_dir(dir_).render(user("x"));
    FAIL() << "no error";
  } catch (const jinja::Error& e) {
    EXPECT_EQ(e.kind(), jinja::ErrorKind::Template);
    EXPECT_EQ(e.message(), "only user messages");
  }
  write("chat_template.jinja", "line\n{% if %}");
  EXPECT_THROW(ChatTemplate::from_model_dir(dir_), jinja::Error);
}

}  // namespace
}  // namespace rackserve::text
