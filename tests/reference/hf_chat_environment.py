"""The Hugging Face chat-template environment, reproduced from transformers'
chat_template_utils._compile_jinja_template so that the fixtures do not need transformers:

  ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                extensions=[AssistantTracker, jinja2.ext.loopcontrols])
  filters["tojson"]   json.dumps(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False)
  globals["raise_exception"]  raises jinja2.exceptions.TemplateError(message)
  globals["strftime_now"]     datetime.now().strftime(format)  -- pinned to FIXED_NOW here

The `{% generation %}` tag of AssistantTracker is reproduced as a pass-through block (its
index tracking is inactive in apply_chat_template without return_assistant_tokens_mask).
Rendering passes messages, tools (None when absent), documents=None, add_generation_prompt
and the special tokens, then the chat_template_kwargs, as apply_chat_template does.
"""
import datetime
import json
import traceback

import jinja2
import jinja2.ext
import jinja2.nodes
from jinja2.sandbox import ImmutableSandboxedEnvironment

# strftime_now() is pinned in both engines (our TemplateOptions::local_time) to this moment.
FIXED_NOW = datetime.datetime(2025, 7, 15, 9, 30, 5)


class GenerationTag(jinja2.ext.Extension):
    tags = {"generation"}

    def parse(self, parser):
        lineno = next(parser.stream).lineno
        body = parser.parse_statements(["name:endgeneration"], drop_needle=True)
        return jinja2.nodes.CallBlock(self.call_method("_generation"), [], [], body).set_lineno(lineno)

    def _generation(self, caller):
        return caller()


def make_environment():
    def raise_exception(message):
        raise jinja2.exceptions.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    def strftime_now(format):
        return FIXED_NOW.strftime(format)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True,
                                        extensions=[GenerationTag, jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = strftime_now
    return env


# Python exception class -> the jinja::ErrorKind name our engine reports (error.cpp).
ERROR_KINDS = {
    "TemplateSyntaxError": "TemplateSyntaxError",
    "TemplateAssertionError": "TemplateSyntaxError",
    "SyntaxError": "TemplateSyntaxError",
    "UndefinedError": "UndefinedError",
    "TypeError": "TypeError",
    "AttributeError": "TypeError",
    "ValueError": "ValueError",
    "ZeroDivisionError": "ValueError",
    "IndexError": "ValueError",
    "KeyError": "ValueError",
    "OverflowError": "ValueError",
    "SecurityError": "SecurityError",
    "TemplateError": "TemplateError",
    "TemplateRuntimeError": "TemplateRuntimeError",
    "FilterArgumentError": "TemplateRuntimeError",
    "RecursionError": "LimitExceeded",
    "MemoryError": "LimitExceeded",
}


def error_record(exc):
    """{type, kind, message, line}: line is the template line jinja2 blames (syntax errors
    carry it; runtime errors have it in the traceback frame of the compiled template)."""
    name = type(exc).__name__
    # A Python SyntaxError (e.g. `break` outside a loop) names a line of the generated code.
    line = getattr(exc, "lineno", None) if isinstance(exc, jinja2.exceptions.TemplateSyntaxError) else None
    if line is None:
        for frame in traceback.extract_tb(exc.__traceback__):
            if frame.filename == "<template>":
                line = frame.lineno
    message = exc.message if isinstance(exc, jinja2.exceptions.TemplateError) and exc.message else str(exc)
    return {"type": name, "kind": ERROR_KINDS.get(name, "Other"), "message": message, "line": line}


def render(env, source, context):
    """{"output": text} or {"error": record}; the template is compiled inside, so syntax
    errors are records too."""
    try:
        return {"output": env.from_string(source).render(**context)}
    except Exception as exc:  # noqa: BLE001 -- every failure is an expected record
        return {"error": error_record(exc)}
