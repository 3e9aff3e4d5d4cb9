// Format names, detection from a chat template, the arguments form each family's templates
// read, and the parser of each format.
#include "text/parsers/tool_call_parser.h"

#include "text/parsers/tool_call_formats.h"

namespace rackserve::text {
namespace {

struct FormatName {
  ToolCallFormat format;
  std::string_view name;
};

constexpr FormatName kFormatNames[] = {
    {ToolCallFormat::DeepSeekV3, "deepseek_v3"}, {ToolCallFormat::DeepSeekV31, "deepseek_v31"},
    {ToolCallFormat::KimiK2, "kimi_k2"},         {ToolCallFormat::Glm45, "glm45"},
    {ToolCallFormat::MiniMaxM2, "minimax_m2"},
};

}  // namespace

std::string_view tool_call_format_name(ToolCallFormat format) {
  for (const auto& entry : kFormatNames) {
    if (entry.format == format) return entry.name;
  }
  return "unknown";
}

std::optional<ToolCallFormat> tool_call_format_named(std::string_view name) {
  for (const auto& entry : kFormatNames) {
    if (entry.name == name) return entry.format;
  }
  return std::nullopt;
}

std::optional<ToolCallFormat> detect_tool_call_format(std::string_view chat_template_source) {
  auto has = [&](std::string_view marker) { return chat_template_source.find(marker) != std::string_view::npos; };
  if (has("<minimax:tool_call>")) return ToolCallFormat::MiniMaxM2;
  if (has("<arg_key>")) return ToolCallFormat::Glm45;
  // Kimi-K2's first template renders no tool calls, only the tool declaration.
  if (has("<|tool_calls_section_begin|>") || has("<|im_system|>tool_declare")) return ToolCallFormat::KimiK2;
  if (has("<｜tool▁calls▁begin｜>")) {
    // V3 / R1 fence the arguments as a json code block after the name; V3.1 does not.
    return has("```json") ? ToolCallFormat::DeepSeekV3 : ToolCallFormat::DeepSeekV31;
  }
  return std::nullopt;
}

ToolArgumentsForm tool_arguments_form(ToolCallFormat format) {
  switch (format) {
    case ToolCallFormat::DeepSeekV3:
    case ToolCallFormat::DeepSeekV31: return ToolArgumentsForm::JsonText;
    case ToolCallFormat::KimiK2: return ToolArgumentsForm::AsGiven;
    case ToolCallFormat::Glm45:
    case ToolCallFormat::MiniMaxM2: return ToolArgumentsForm::Mapping;
  }
  return ToolArgumentsForm::AsGiven;
}

std::unique_ptr<ToolCallParser> make_tool_call_parser(ToolCallFormat format, const nlohmann::json& tools) {
  switch (format) {
    case ToolCallFormat::DeepSeekV3: return make_deepseek_v3_tool_call_parser();
    case ToolCallFormat::DeepSeekV31: return make_deepseek_v31_tool_call_parser();
    case ToolCallFormat::KimiK2: return make_kimi_k2_tool_call_parser();
    case ToolCallFormat::Glm45: return make_glm45_tool_call_parser(ArgumentTypes(tools));
    case ToolCallFormat::MiniMaxM2: return make_minimax_m2_tool_call_parser(ArgumentTypes(tools));
  }
  return make_deepseek_v31_tool_call_parser();
}

}  // namespace rackserve::text
