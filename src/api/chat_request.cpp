#include "api/chat_request.h"

#include <fmt/format.h>

#include "api/api_error.h"
#include "api/json_fields.h"
#include "api/structured_outputs.h"
#include "api/tool_call_list.h"
#include "engine/json_schema_compile.h"

namespace rackserve::api {
namespace {

constexpr size_t kMaxMessages = 4096;
// Templates read a few switches (enable_thinking, thinking, ...). Each entry becomes a
// top-level template variable, and the engine finds variables by a linear scan, so a
// body of 90,000 entries took half a minute to render.
constexpr size_t kMaxTemplateKwargs = 64;

// One message, content flattened to a string (or null, for assistant tool-call turns).
nlohmann::ordered_json normalize_message(const nlohmann::ordered_json& message, size_t index) {
  const std::string where = fmt::format("messages[{}].", index);
  JsonFields fields(message, where);
  auto role = fields.string("role");
  if (!role) throw bad_request(where + "role", "'{}role' is required", where);
  static constexpr const char* kRoles[] = {"system", "developer", "user", "assistant", "tool", "function"};
  bool known = false;
  for (const char* candidate : kRoles) known = known || *role == candidate;
  if (!known) throw bad_request(where + "role", "'{}role' must be one of system, developer, user, assistant, tool; got \"{}\"", where, *role);

  nlohmann::ordered_json normalized = message;
  const nlohmann::ordered_json* content = fields.find("content");
  if (content == nullptr) {
    if (*role != "assistant") throw bad_request(where + "content", "'{}content' is required for role {}", where, *role);
    normalized["content"] = nullptr;
  } else if (content->is_array()) {
    std::string text;
    for (size_t part_index = 0; part_index < content->size(); ++part_index) {
      const std::string part_where = fmt::format("{}content[{}].", where, part_index);
      JsonFields part(content->at(part_index), part_where);
      auto type = part.string("type");
      if (!type) throw bad_request(part_where + "type", "'{}type' is required", part_where);
      if (*type != "text") throw unsupported(part_where + "type", fmt::format("content part type \"{}\"", *type));
      auto part_text = part.string("text");
      if (!part_text) throw bad_request(part_where + "text", "'{}text' is required", part_where);
      if (!text.empty()) text += "\n";
      text += *part_text;
    }
    normalized["content"] = text;
  } else if (!content->is_string()) {
    throw bad_request(where + "content", "'{}content' must be a string or an array of content parts, got {}", where,
                      json_type_name(*content));
  }
  return normalized;
}

// One entry of "tools": {"type": "function", "function": {"name": …, "parameters"?: {…}}}.
void check_tool(const nlohmann::ordered_json& tool, size_t index) {
  const std::string where = fmt::format("tools[{}].", index);
  JsonFields fields(tool, where);
  if (fields.string("type").value_or("function") != "function")
    throw bad_request(where + "type", "'{}type' must be \"function\"", where);
  auto function = fields.object("function");
  if (!function) throw bad_request(where + "function", "'{}function' is required", where);
  JsonFields function_fields(*function, where + "function.");
  auto name = function_fields.string("name");
  if (!name || name->empty()) throw bad_request(where + "function.name", "'{}function.name' is required", where);
  function_fields.object("parameters");  // validates the type when present
}

// The function a tool_choice object names: {"type": "function", "function": {"name": …}}.
std::string read_named_function(const nlohmann::ordered_json& choice) {
  JsonFields fields(choice, "tool_choice.");
  if (fields.string("type").value_or("function") != "function")
    throw bad_request("tool_choice.type", "'tool_choice.type' must be \"function\"");
  auto function = fields.object("function");
  if (!function) throw bad_request("tool_choice.function", "'tool_choice.function' is required");
  auto name = JsonFields(*function, "tool_choice.function.").string("name");
  if (!name || name->empty()) throw bad_request("tool_choice.function.name", "'tool_choice.function.name' is required");
  return *name;
}

// "none" | "auto" | "required" | {"type": "function", "function": {"name": …}}; sets
// `function_out` for the last.
ToolChoice read_tool_choice(const JsonFields& fields, bool has_tools, std::string& function_out) {
  const nlohmann::ordered_json* choice = fields.find("tool_choice");
  if (choice == nullptr || choice->is_null()) return has_tools ? ToolChoice::Auto : ToolChoice::None;
  if (choice->is_string()) {
    const auto& value = choice->get_ref<const std::string&>();
    if (value == "none") return ToolChoice::None;
    if (value == "auto") return has_tools ? ToolChoice::Auto : ToolChoice::None;
    if (value == "required") {
      if (!has_tools) throw bad_request("tool_choice", "'tool_choice' is \"required\" but no 'tools' were given");
      return ToolChoice::Required;
    }
    throw bad_request("tool_choice", "'tool_choice' must be \"none\", \"auto\", \"required\" or a function, got \"{}\"", value);
  }
  if (choice->is_object()) {
    function_out = read_named_function(*choice);
    if (!has_tools) throw bad_request("tool_choice", "'tool_choice' names a function but no 'tools' were given");
    return ToolChoice::Function;
  }
  throw bad_request("tool_choice", "'tool_choice' must be a string or an object, got {}", json_type_name(*choice));
}

// The compiled "parameters" of the tool named `name` (checked by check_tool); 400 when no
// tool has that name or its parameters are outside the supported schema subset.
std::shared_ptr<const JsonSchema> compile_tool_parameters(const nlohmann::ordered_json& tools, const std::string& name) {
  for (size_t i = 0; i < tools.size(); ++i) {
    const nlohmann::ordered_json& function = tools[i]["function"];
    if (function["name"] != name) continue;
    const std::string where = fmt::format("tools[{}].function.parameters", i);
    try {
      return compile_json_schema(tool_parameters_schema(function));
    } catch (const JsonSchemaError& error) {
      throw bad_request(where, "'{}' of the function 'tool_choice' names: {}", where, error.what());
    }
  }
  throw bad_request("tool_choice", "'tool_choice' names function \"{}\", which is not in 'tools'", name);
}

// response_format: {"type": "text" | "json_object"} or {"type": "json_schema", "json_schema":
// {"name"?, "description"?, "schema", "strict"?}}; other types answer 422. "strict" is read
// and ignored: the output always follows the schema.
ResponseFormat read_response_format(const JsonFields& fields, std::shared_ptr<const JsonSchema>& schema_out) {
  auto format = fields.object("response_format");
  if (!format) return ResponseFormat::Text;
  JsonFields format_fields(*format, "response_format.");
  const std::string type = format_fields.string("type").value_or("text");
  if (type == "text") return ResponseFormat::Text;
  if (type == "json_object") return ResponseFormat::JsonObject;
  if (type != "json_schema") throw unsupported("response_format", fmt::format("'response_format' of type \"{}\"", type));
  auto json_schema = format_fields.object("json_schema");
  if (!json_schema)
    throw bad_request("response_format.json_schema", "'response_format.json_schema' is required for type \"json_schema\"");
  JsonFields schema_fields(*json_schema, "response_format.json_schema.");
  schema_fields.string("name");  // validates the types when present
  schema_fields.string("description");
  schema_fields.boolean("strict");
  auto schema = schema_fields.object("schema");
  if (!schema) throw bad_request("response_format.json_schema.schema", "'response_format.json_schema.schema' is required");
  try {
    schema_out = compile_json_schema(*schema);
  } catch (const JsonSchemaError& error) {
    throw bad_request("response_format.json_schema.schema", "'response_format.json_schema.schema': {}", error.what());
  }
  return ResponseFormat::JsonSchema;
}

// vLLM's structured_outputs / guided_* fields (structured_outputs.h), as a response format:
// only where response_format is "text".
void read_vllm_structured_output(const JsonFields& fields, ChatRequest& request) {
  StructuredOutput structured = read_structured_outputs(fields);
  if (structured.kind == StructuredOutput::Kind::None) return;
  if (request.response_format != ResponseFormat::Text)
    throw bad_request(structured.field, "'{}' and 'response_format' exclude each other", structured.field);
  request.format_field = structured.field;
  switch (structured.kind) {
    case StructuredOutput::Kind::JsonObject: request.response_format = ResponseFormat::JsonObject; break;
    case StructuredOutput::Kind::JsonSchema:
      request.response_format = ResponseFormat::JsonSchema;
      request.json_schema = std::move(structured.schema);
      break;
    case StructuredOutput::Kind::Choice:
      request.response_format = ResponseFormat::Choice;
      request.choices = std::move(structured.choices);
      break;
    case StructuredOutput::Kind::None: break;
  }
}

}  // namespace

ChatRequest parse_chat_request(const nlohmann::ordered_json& body, const FieldLimits& limits) {
  JsonFields fields(body);
  ChatRequest request;
  request.model = fields.string("model");

  const nlohmann::ordered_json* messages = fields.find("messages");
  if (messages == nullptr) throw bad_request("messages", "'messages' is required");
  if (!messages->is_array()) throw bad_request("messages", "'messages' must be an array, got {}", json_type_name(*messages));
  if (messages->empty()) throw bad_request("messages", "'messages' must not be empty");
  if (messages->size() > kMaxMessages) throw bad_request("messages", "'messages' may hold at most {} entries", kMaxMessages);
  request.messages = nlohmann::ordered_json::array();
  for (size_t i = 0; i < messages->size(); ++i) request.messages.push_back(normalize_message(messages->at(i), i));

  if (const auto* tools = fields.find("tools"); tools != nullptr && !tools->is_null()) {
    if (!tools->is_array()) throw bad_request("tools", "'tools' must be an array, got {}", json_type_name(*tools));
    for (size_t i = 0; i < tools->size(); ++i) check_tool(tools->at(i), i);
    if (!tools->empty()) request.tools = *tools;
  }
  request.tool_choice = read_tool_choice(fields, !request.tools.is_null(), request.tool_choice_function);
  if (request.tool_choice == ToolChoice::None) request.tools = nullptr;
  request.parallel_tool_calls = fields.boolean("parallel_tool_calls").value_or(true);
  if (auto kwargs = fields.object("chat_template_kwargs")) {
    if (kwargs->size() > kMaxTemplateKwargs)
      throw bad_request("chat_template_kwargs", "'chat_template_kwargs' may hold at most {} entries", kMaxTemplateKwargs);
    request.chat_template_kwargs = std::move(*kwargs);
  }
  request.add_generation_prompt = fields.boolean("add_generation_prompt").value_or(true);
  request.continue_final_message = fields.boolean("continue_final_message").value_or(false);
  if (request.continue_final_message && request.add_generation_prompt && fields.has("add_generation_prompt"))
    throw bad_request("continue_final_message", "'continue_final_message' and 'add_generation_prompt' exclude each other");
  if (request.continue_final_message) request.add_generation_prompt = false;
  request.response_format = read_response_format(fields, request.json_schema);
  read_vllm_structured_output(fields, request);
  if (request.tool_choice == ToolChoice::Function || request.tool_choice == ToolChoice::Required) {
    if (request.response_format != ResponseFormat::Text)
      throw bad_request(request.format_field, "'{}' cannot be used when 'tool_choice' is {}", request.format_field,
                        request.tool_choice == ToolChoice::Required ? "\"required\"" : "a function");
    request.json_schema = request.tool_choice == ToolChoice::Required
                              ? compile_tool_call_list(request.tools, !request.parallel_tool_calls)
                              : compile_tool_parameters(request.tools, request.tool_choice_function);
  }
  request.stream = read_stream_options(fields);
  request.sampling = read_sampling_params(fields, Endpoint::Chat, limits);
  return request;
}

}  // namespace rackserve::api
