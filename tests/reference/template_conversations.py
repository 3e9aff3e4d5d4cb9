"""The conversation suite every model chat template is rendered with. Each entry is a
request as a server receives it: messages, optional tools, add_generation_prompt and
chat_template_kwargs. Covers system prompts, multi-turn, tool definitions, assistant tool
calls with arguments as dict and as JSON string, tool results, reasoning_content, thinking
on/off, generation prompt on/off, unicode and quotes, and keys out of alphabetical order.
The last conversations pair each tool-call conversation with its arguments in the other
form (JSON text / mapping): a server that converts arguments to the form a template reads
must render one as jinja2 renders the other."""

import copy
import json

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}

SEARCH_TOOL = {
    "type": "function",
    "function": {
        "name": "web_search",
        "description": "Search the web; returns the top results. 支持中文查询。",
        "parameters": {
            "type": "object",
            "properties": {
                "query": {"type": "string"},
                "limit": {"type": "integer", "minimum": 1, "maximum": 10, "default": 3},
                "filters": {"type": "array", "items": {"type": "string"}},
                "strict": {"type": "boolean"},
                "ratio": {"type": "number"},
            },
            "required": ["query"],
        },
    },
}

TOOLS = [WEATHER_TOOL, SEARCH_TOOL]


def call(call_id, name, arguments):
    return {"id": call_id, "type": "function", "function": {"name": name, "arguments": arguments}}


def tool_result(call_id, name, content):
    return {"role": "tool", "tool_call_id": call_id, "name": name, "content": content}


SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
UNICODE_TEXT = ("Quotes: \"double\" and 'single' and `back`; backslash \\ and \\n literal; "
                "中文测试，日本語のテキスト、한국어; emoji 🤖👍🏽; accents café naïve; "
                "tags <b>bold</b> & {{ not a tag }} {% nor this %}\ttab\nsecond line")

CONVERSATIONS = [
    {"name": "single_user", "messages": [{"role": "user", "content": "Hello!"}], "add_generation_prompt": True},
    {"name": "system_user", "messages": [SYSTEM, {"role": "user", "content": "What is 2+2?"}],
     "add_generation_prompt": True},
    {"name": "multi_turn", "messages": [
        SYSTEM,
        {"role": "user", "content": "Hi, who are you?"},
        {"role": "assistant", "content": "I am an assistant."},
        {"role": "user", "content": "Tell me a joke."},
        {"role": "assistant", "content": "Why did the chicken cross the road?"},
        {"role": "user", "content": "Why?"}], "add_generation_prompt": True},
    {"name": "multi_turn_no_generation_prompt", "messages": [
        {"role": "user", "content": "Ping"},
        {"role": "assistant", "content": "Pong"}], "add_generation_prompt": False},
    {"name": "user_no_generation_prompt", "messages": [SYSTEM, {"role": "user", "content": "Just text."}],
     "add_generation_prompt": False},
    {"name": "tools_defined", "messages": [SYSTEM, {"role": "user", "content": "Weather in Paris?"}],
     "tools": TOOLS, "add_generation_prompt": True},
    {"name": "tools_no_system", "messages": [{"role": "user", "content": "Search for jinja."}],
     "tools": [SEARCH_TOOL], "add_generation_prompt": True},
    {"name": "tool_call_dict_arguments", "messages": [
        SYSTEM,
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": "", "tool_calls": [
            call("call_1", "get_weather", {"city": "Paris", "unit": "celsius"})]},
        tool_result("call_1", "get_weather", "{\"temperature\": 21, \"sky\": \"clear\"}")],
     "tools": TOOLS, "add_generation_prompt": True},
    {"name": "tool_call_string_arguments", "messages": [
        {"role": "user", "content": "Weather in Oslo?"},
        {"role": "assistant", "content": "", "tool_calls": [
            call("call_7", "get_weather", "{\"city\": \"Oslo\"}")]},
        tool_result("call_7", "get_weather", "Rain, 8 degrees")],
     "tools": TOOLS, "add_generation_prompt": True},
    {"name": "parallel_tool_calls", "messages": [
        SYSTEM,
        {"role": "user", "content": "Compare the weather in Rome and Tokyo, then search news."},
        {"role": "assistant", "content": "Let me check both.", "tool_calls": [
            call("call_a", "get_weather", {"city": "Rome"}),
            call("call_b", "get_weather", {"city": "東京", "unit": "celsius"}),
            call("call_c", "web_search", {"query": "news \"today\"", "limit": 2, "filters": ["a", "b"],
                                          "strict": True, "ratio": 0.5})]},
        tool_result("call_a", "get_weather", "Sunny, 30"),
        tool_result("call_b", "get_weather", "Cloudy, 25"),
        tool_result("call_c", "web_search", "[\"headline 1\", \"headline 2\"]"),
        {"role": "assistant", "content": "Rome is sunny; Tokyo is cloudy."},
        {"role": "user", "content": "Thanks!"}],
     "tools": TOOLS, "add_generation_prompt": True},
    {"name": "tool_call_then_final_answer", "messages": [
        {"role": "user", "content": "Weather in Lima?"},
        {"role": "assistant", "content": None, "tool_calls": [call("call_9", "get_weather", {"city": "Lima"})]},
        tool_result("call_9", "get_weather", "Fog"),
        {"role": "assistant", "content": "It is foggy in Lima."}],
     "tools": TOOLS, "add_generation_prompt": False},
    {"name": "reasoning_content", "messages": [
        SYSTEM,
        {"role": "user", "content": "What is 17*3?"},
        {"role": "assistant", "content": "51", "reasoning_content": "17*3 = 51, straightforward."},
        {"role": "user", "content": "And 18*3?"}], "add_generation_prompt": True},
    {"name": "reasoning_with_tool_call", "messages": [
        {"role": "user", "content": "Weather in Cairo?"},
        {"role": "assistant", "content": "", "reasoning_content": "I should call the weather tool.",
         "tool_calls": [call("call_r", "get_weather", {"city": "Cairo"})]},
        tool_result("call_r", "get_weather", "Hot, 38"),
        {"role": "assistant", "content": "It is hot.", "reasoning_content": "Summarize the result."},
        {"role": "user", "content": "And tomorrow?"}],
     "tools": TOOLS, "add_generation_prompt": True},
    {"name": "think_tags_in_content", "messages": [
        {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "<think>\nThe user greets me.\n</think>\n\nHello there!"},
        {"role": "user", "content": "Again"}], "add_generation_prompt": True},
    {"name": "thinking_enabled", "messages": [SYSTEM, {"role": "user", "content": "Prove 1+1=2."}],
     "add_generation_prompt": True, "kwargs": {"enable_thinking": True, "thinking": True}},
    {"name": "thinking_disabled", "messages": [SYSTEM, {"role": "user", "content": "Prove 1+1=2."}],
     "add_generation_prompt": True, "kwargs": {"enable_thinking": False, "thinking": False}},
    {"name": "thinking_disabled_multi_turn", "messages": [
        {"role": "user", "content": "Q1"},
        {"role": "assistant", "content": "A1", "reasoning_content": "R1"},
        {"role": "user", "content": "Q2"}],
     "add_generation_prompt": True, "kwargs": {"enable_thinking": False, "thinking": False}},
    {"name": "unicode_and_quotes", "messages": [
        {"role": "system", "content": "Répondez en français. «Guillemets» — “curly” ‘quotes’."},
        {"role": "user", "content": UNICODE_TEXT},
        {"role": "assistant", "content": "Reçu: \"ok\" 'ok' 👌 — 好的"},
        {"role": "user", "content": "Line1\r\nLine2\u2028Line3 \u00a0nbsp"}], "add_generation_prompt": True},
    {"name": "unicode_tool_arguments", "messages": [
        {"role": "user", "content": "Search 北京天气"},
        {"role": "assistant", "content": "", "tool_calls": [
            call("call_u", "web_search", {"query": "北京 \"天气\" \\ 'x'", "filters": ["é", "🤖"]})]},
        tool_result("call_u", "web_search", "晴天 ☀️ \"quoted\"")],
     "tools": TOOLS, "add_generation_prompt": True},
    {"name": "content_parts", "messages": [
        {"role": "user", "content": [{"type": "text", "text": "Part one."}, {"type": "text", "text": "Part two."}]}],
     "add_generation_prompt": True},
    {"name": "empty_content", "messages": [
        {"role": "user", "content": ""},
        {"role": "assistant", "content": ""},
        {"role": "user", "content": "   "}], "add_generation_prompt": True},
    {"name": "whitespace_edges", "messages": [
        {"role": "system", "content": "\n  padded system  \n"},
        {"role": "user", "content": "  leading and trailing  \n\n"}], "add_generation_prompt": True},
]

# A tool and a call whose keys are not in alphabetical order, as clients write them (a
# server that sorts keys renders the schema and the argument mapping differently). The
# function keeps name, description, parameters: the order the Anthropic route writes.
BOOKING_TOOL = {
    "type": "function",
    "function": {
        "name": "book_table",
        "description": "Book a restaurant table.",
        "parameters": {
            "type": "object",
            "required": ["time", "restaurant"],
            "properties": {
                "time": {"type": "string", "description": "24h clock, e.g. 19:30"},
                "restaurant": {"type": "string"},
                "party_size": {"type": "integer", "minimum": 1},
                "options": {"type": "object", "properties": {"terrace": {"type": "boolean"},
                                                             "highchair": {"type": "boolean"}}},
            },
        },
    },
}

CONVERSATIONS.append({"name": "client_key_order", "messages": [
    {"role": "user", "content": "Book Chez Nous at 19:30 for 4, on the terrace."},
    {"role": "assistant", "content": None, "tool_calls": [
        call("call_k", "book_table", {"time": "19:30", "restaurant": "Chez Nous", "party_size": 4,
                                      "options": {"terrace": True, "highchair": False}})]},
    tool_result("call_k", "book_table", "Booked.")],
    "tools": [BOOKING_TOOL], "add_generation_prompt": True})


def arguments_text(arguments):
    """A mapping as the JSON text the server writes when a template reads text: compact,
    UTF-8 as is, keys in the client's order."""
    return json.dumps(arguments, ensure_ascii=False, separators=(",", ":"))


def with_arguments(name, source, convert):
    """The conversation `source` with every tool call's arguments converted."""
    conversation = copy.deepcopy(next(c for c in CONVERSATIONS if c["name"] == source))
    conversation["name"] = name
    for message in conversation["messages"]:
        for tool_call in message.get("tool_calls") or []:
            tool_call["function"]["arguments"] = convert(tool_call["function"]["arguments"])
    return conversation


CONVERSATIONS += [
    with_arguments("tool_call_string_arguments_as_mapping", "tool_call_string_arguments", json.loads),
    with_arguments("tool_call_mapping_arguments_as_text", "parallel_tool_calls", arguments_text),
    with_arguments("unicode_tool_arguments_as_text", "unicode_tool_arguments", arguments_text),
    with_arguments("client_key_order_arguments_as_text", "client_key_order", arguments_text),
]
