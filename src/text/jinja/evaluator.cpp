// Statement execution and expression evaluation. Errors raised by operations carry the
// offset of the node being evaluated; the Template turns it into line and column.
#include "text/jinja/evaluator.h"

#include <new>
#include <optional>

#include "text/jinja/builtins.h"
#include "text/jinja/operators.h"
#include "text/jinja/unicode.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

namespace {

constexpr int kMaxEvalDepth = 1000;  // nested evaluation frames (expressions, blocks, calls)
constexpr int kMaxCallDepth = 100;   // nested macro calls

// Scopes are always heap-allocated so a macro can keep the scope it was defined in alive.
struct OwnedScope : Scope, std::enable_shared_from_this<OwnedScope> {
  using Scope::Scope;
};

// jinja2's LoopContext: one object per loop, advanced each iteration.
class LoopObject : public Object, public std::enable_shared_from_this<LoopObject> {
 public:
  explicit LoopObject(std::vector<Value> items) : items_(std::move(items)) {}

  void advance(size_t index0) { index0_ = index0; }
  const std::vector<Value>& items() const { return items_; }

  std::string_view type_name() const override { return "LoopContext"; }

  Value attribute(std::string_view name) const override {
    const int64_t length = static_cast<int64_t>(items_.size());
    const int64_t i = static_cast<int64_t>(index0_);
    if (name == "index0") return Value::integer(i);
    if (name == "index") return Value::integer(i + 1);
    if (name == "revindex") return Value::integer(length - i);
    if (name == "revindex0") return Value::integer(length - i - 1);
    if (name == "first") return Value::boolean(i == 0);
    if (name == "last") return Value::boolean(i == length - 1);
    if (name == "length") return Value::integer(length);
    if (name == "depth") return Value::integer(1);
    if (name == "depth0") return Value::integer(0);
    if (name == "previtem") return i > 0 ? items_[i - 1] : Value::undefined("there is no previous item");
    if (name == "nextitem") return i + 1 < length ? items_[i + 1] : Value::undefined("there is no next item");
    if (name == "cycle") {
      auto self = std::const_pointer_cast<LoopObject>(shared_from_this());
      auto callable = std::make_shared<Callable>();
      callable->name = "cycle";
      callable->kind = Callable::Kind::Method;
      callable->function = [self](Renderer&, CallArgs& args) -> Value {
        if (args.positional.empty()) throw Error(ErrorKind::Type, "no items for cycling given");
        return args.positional[self->index0_ % args.positional.size()];
      };
      return Value::callable(std::move(callable));
    }
    if (name == "changed") {
      auto self = std::const_pointer_cast<LoopObject>(shared_from_this());
      auto callable = std::make_shared<Callable>();
      callable->name = "changed";
      callable->kind = Callable::Kind::Method;
      callable->function = [self](Renderer&, CallArgs& args) -> Value {
        Value current = Value::tuple(args.positional);
        if (self->has_last_ && equals(self->last_, current)) return Value::boolean(false);
        self->last_ = std::move(current);
        self->has_last_ = true;
        return Value::boolean(true);
      };
      return Value::callable(std::move(callable));
    }
    return Value::undefined("'jinja2.runtime.LoopContext object' has no attribute " + repr_string(name));
  }

  void release() override {
    items_.clear();
    last_ = Value();
  }

  std::string repr(int) const override {
    return "<LoopContext " + std::to_string(index0_ + 1) + "/" + std::to_string(items_.size()) + ">";
  }

 private:
  std::vector<Value> items_;
  size_t index0_ = 0;
  Value last_;
  bool has_last_ = false;
};

class DepthGuard {
 public:
  DepthGuard(int& depth, int limit, const char* what) : depth_(depth) {
    if (++depth_ > limit) {
      --depth_;
      throw Error(ErrorKind::Limit, what);
    }
  }
  ~DepthGuard() { --depth_; }

 private:
  int& depth_;
};

}  // namespace

const Value* Scope::find(std::string_view name) const {
  for (const Scope* scope = this; scope != nullptr; scope = scope->parent) {
    for (const auto& [key, value] : scope->vars) {
      if (key == name) return &value;
    }
  }
  return nullptr;
}

void Scope::set(std::string_view name, Value value) {
  for (auto& [key, existing] : vars) {
    if (key == name) {
      existing = std::move(value);
      return;
    }
  }
  vars.emplace_back(std::string(name), std::move(value));
}

Renderer::Renderer(const TemplateOptions& options, const Scope& globals)
    : options_(options), globals_(globals), alive_(std::make_shared<bool>(true)) {}

Renderer::~Renderer() {
  for (const auto& object : created_) object->release();
  for (const Value& value : mutated_) {
    if (value.is_list()) value.as_list().items.clear();
    if (value.is_dict()) value.as_dict().entries.clear();
  }
}

void Renderer::track(std::shared_ptr<Object> object) { created_.push_back(std::move(object)); }

void Renderer::track_mutated(const Value& container) { mutated_.push_back(container); }

std::shared_ptr<Scope> Renderer::new_scope(const Scope* parent) { return std::make_shared<OwnedScope>(parent); }

std::string Renderer::render(const Body& body) {
  auto root = new_scope(&globals_);
  std::string out;
  try {
    exec_body(body, *root, out);
  } catch (Error& e) {
    if (e.offset() == Error::kNoOffset) e.set_offset(offset_);
    throw;
  } catch (const std::bad_alloc&) {
    throw Error(ErrorKind::Limit, "out of memory while rendering", offset_);
  } catch (const std::length_error&) {
    throw Error(ErrorKind::Limit, "value too large while rendering", offset_);
  }
  return out;
}

void Renderer::step() {
  if (++steps_ > options_.max_steps) {
    throw Error(ErrorKind::Limit, "template exceeded " + std::to_string(options_.max_steps) + " loop iterations and calls");
  }
}

// ---- statements -------------------------------------------------------------------------

Renderer::Flow Renderer::exec_body(const Body& body, Scope& scope, std::string& out) {
  for (const StmtPtr& stmt : body) {
    const Flow flow = exec(*stmt, scope, out);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

void Renderer::append_output(std::string& out, const Value& value) {
  if (value.is_string()) {
    out += value.as_string();
  } else {
    append_str(out, value, options_.max_output_bytes);
  }
  if (out.size() > options_.max_output_bytes) {
    throw Error(ErrorKind::Limit, "output exceeds " + std::to_string(options_.max_output_bytes) + " bytes");
  }
}

Renderer::Flow Renderer::exec(const Stmt& stmt, Scope& scope, std::string& out) {
  DepthGuard depth(eval_depth_, kMaxEvalDepth, "template nested too deeply while rendering");
  switch (stmt.kind) {
    case StmtKind::Text:
      out += static_cast<const TextStmt&>(stmt).text;
      if (out.size() > options_.max_output_bytes) {
        offset_ = stmt.offset;
        throw Error(ErrorKind::Limit, "output exceeds " + std::to_string(options_.max_output_bytes) + " bytes");
      }
      return Flow::Normal;
    case StmtKind::Output: {
      const Value value = eval(*static_cast<const OutputStmt&>(stmt).expr, scope);
      offset_ = stmt.offset;
      append_output(out, value);
      return Flow::Normal;
    }
    case StmtKind::If: {
      const auto& node = static_cast<const IfStmt&>(stmt);
      for (const auto& branch : node.branches) {
        if (truthy(eval(*branch.test, scope))) return exec_body(branch.body, scope, out);
      }
      return exec_body(node.otherwise, scope, out);
    }
    case StmtKind::For: exec_for(static_cast<const ForStmt&>(stmt), scope, out); return Flow::Normal;
    case StmtKind::Set: {
      const auto& node = static_cast<const SetStmt&>(stmt);
      const Value value = eval(*node.value, scope);
      assign(node.target, value, scope);
      return Flow::Normal;
    }
    case StmtKind::SetBlock: {
      const auto& node = static_cast<const SetBlockStmt&>(stmt);
      Value value = apply_chain(node.filters, Value::string(render_block(node.body, scope)), scope);
      assign(node.target, value, scope);
      return Flow::Normal;
    }
    case StmtKind::Macro: {
      const auto& node = static_cast<const MacroStmt&>(stmt);
      scope.set(node.macro.name, make_macro(node.macro, scope));
      return Flow::Normal;
    }
    case StmtKind::CallBlock: exec_call_block(static_cast<const CallBlockStmt&>(stmt), scope, out); return Flow::Normal;
    case StmtKind::FilterBlock: {
      const auto& node = static_cast<const FilterBlockStmt&>(stmt);
      const Value value = apply_chain(node.filters, Value::string(render_block(node.body, scope)), scope);
      offset_ = stmt.offset;
      append_output(out, value);
      return Flow::Normal;
    }
    case StmtKind::With: {
      const auto& node = static_cast<const WithStmt&>(stmt);
      std::vector<Value> values;
      for (const auto& [target, expr] : node.assignments) values.push_back(eval(*expr, scope));
      auto inner = new_scope(&scope);
      for (size_t i = 0; i < values.size(); ++i) assign(node.assignments[i].first, values[i], *inner);
      return exec_body(node.body, *inner, out);
    }
    case StmtKind::Group: return exec_body(static_cast<const GroupStmt&>(stmt).body, scope, out);
    case StmtKind::Break: return Flow::Break;
    case StmtKind::Continue: return Flow::Continue;
  }
  return Flow::Normal;
}

void Renderer::exec_for(const ForStmt& stmt, Scope& scope, std::string& out) {
  const Value iterable = eval(*stmt.iterable, scope);
  offset_ = stmt.iterable->offset;
  std::vector<Value> items = iterate(iterable);
  if (stmt.filter) {
    std::vector<Value> kept;
    auto filter_scope = new_scope(&scope);
    for (Value& item : items) {
      step();
      filter_scope->vars.clear();
      assign(stmt.target, item, *filter_scope);
      if (truthy(eval(*stmt.filter, *filter_scope))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) {
    auto else_scope = new_scope(&scope);
    exec_body(stmt.otherwise, *else_scope, out);
    return;
  }
  auto loop = std::make_shared<LoopObject>(std::move(items));
  track(loop);
  const Value loop_value = Value::object(loop);
  const size_t count = loop->items().size();
  for (size_t i = 0; i < count; ++i) {
    step();
    loop->advance(i);
    // A fresh scope per iteration: jinja2 does not carry `set` values across iterations.
    auto iteration = new_scope(&scope);
    assign(stmt.target, loop->items()[i], *iteration);
    iteration->set("loop", loop_value);
    if (exec_body(stmt.body, *iteration, out) == Flow::Break) break;
  }
}

void Renderer::exec_call_block(const CallBlockStmt& stmt, Scope& scope, std::string& out) {
  const Value caller = make_macro(stmt.caller, scope);
  const Value result = eval_call(*stmt.call, scope, &caller);
  offset_ = stmt.offset;
  append_output(out, result);
}

std::string Renderer::render_block(const Body& body, Scope& parent) {
  auto inner = new_scope(&parent);
  std::string text;
  exec_body(body, *inner, text);
  return text;
}

Value Renderer::apply_chain(const FilterChain& filters, Value value, Scope& scope) {
  for (const auto& filter : filters) value = eval_filter(*filter, scope, &value);
  return value;
}

void Renderer::assign(const Target& target, const Value& value, Scope& scope) {
  switch (target.kind) {
    case Target::Kind::Name: scope.set(target.name, value); return;
    case Target::Kind::Tuple: {
      offset_ = target.offset;
      const std::vector<Value> items = iterate(value);
      const size_t expected = target.items.size();
      if (items.size() > expected) {
        throw Error(ErrorKind::Value, "too many values to unpack (expected " + std::to_string(expected) + ")");
      }
      if (items.size() < expected) {
        throw Error(ErrorKind::Value, "not enough values to unpack (expected " + std::to_string(expected) + ", got " +
                                          std::to_string(items.size()) + ")");
      }
      for (size_t i = 0; i < expected; ++i) assign(target.items[i], items[i], scope);
      return;
    }
    case Target::Kind::NamespaceAttribute: {
      const Value object = lookup(target.name, scope);
      if (!object.is_object() || !object.as_object().set_attribute(target.attribute, value)) {
        offset_ = target.offset;
        throw Error(ErrorKind::Runtime, "cannot assign attribute on non-namespace object");
      }
      return;
    }
  }
}

// ---- macros -------------------------------------------------------------------------------

Value Renderer::make_macro(const MacroDefinition& macro, Scope& scope) {
  // Every scope is an OwnedScope (see new_scope); keep it alive for the macro.
  pinned_.push_back(static_cast<OwnedScope&>(scope).shared_from_this());
  const Scope* closure = &scope;
  std::weak_ptr<bool> alive = alive_;
  const Renderer* owner = this;
  auto callable = std::make_shared<Callable>();
  callable->name = macro.name;
  callable->kind = Callable::Kind::Macro;
  callable->function = [&macro, closure, alive, owner](Renderer& renderer, CallArgs& args) -> Value {
    if (alive.expired() || owner != &renderer) {
      throw Error(ErrorKind::Runtime, "macro '" + macro.name + "' called outside the render that defined it");
    }
    return renderer.invoke_macro(macro, closure, args);
  };
  return Value::callable(std::move(callable));
}

Value Renderer::invoke_macro(const MacroDefinition& macro, const Scope* closure, CallArgs& args) {
  step();
  DepthGuard calls(call_depth_, kMaxCallDepth, "maximum macro recursion depth exceeded");
  auto scope = new_scope(closure);
  const size_t count = macro.parameters.size();
  std::vector<bool> bound(count, false);
  std::vector<Value> extra;
  for (size_t i = 0; i < args.positional.size(); ++i) {
    if (i < count) {
      scope->set(macro.parameters[i].name, args.positional[i]);
      bound[i] = true;
    } else {
      extra.push_back(args.positional[i]);
    }
  }
  if (!extra.empty() && !macro.uses_varargs) {
    throw Error(ErrorKind::Type,
                "macro '" + macro.name + "' takes not more than " + std::to_string(count) + " argument(s)");
  }
  Value caller;
  auto kwargs = std::make_shared<Dict>();
  for (auto& [name, value] : args.keyword) {
    size_t index = count;
    for (size_t i = 0; i < count; ++i) {
      if (macro.parameters[i].name == name) index = i;
    }
    if (index < count) {
      if (bound[index]) {
        throw Error(ErrorKind::Type, "macro '" + macro.name + "' got multiple values for argument '" + name + "'");
      }
      scope->set(name, value);
      bound[index] = true;
    } else if (name == "caller" && macro.uses_caller) {
      caller = value;
    } else if (macro.uses_kwargs) {
      kwargs->set(Value::string(name), value);
    } else {
      throw Error(ErrorKind::Type, "macro '" + macro.name + "' takes no keyword argument '" + name + "'");
    }
  }
  for (size_t i = 0; i < count; ++i) {
    if (bound[i]) continue;
    const Parameter& parameter = macro.parameters[i];
    if (parameter.default_value) {
      scope->set(parameter.name, eval(*parameter.default_value, *scope));
    } else {
      scope->set(parameter.name, Value::undefined("parameter " + repr_string(parameter.name) + " was not provided"));
    }
  }
  if (macro.uses_caller) scope->set("caller", caller.is_undefined() ? Value::undefined("No caller defined") : caller);
  if (macro.uses_varargs) scope->set("varargs", Value::tuple(std::move(extra)));
  if (macro.uses_kwargs) scope->set("kwargs", Value::dict(std::move(kwargs)));
  std::string out;
  exec_body(macro.body, *scope, out);
  return Value::string(std::move(out));
}

// ---- expressions --------------------------------------------------------------------------

Value Renderer::lookup(std::string_view name, const Scope& scope) const {
  if (const Value* value = scope.find(name)) return *value;
  Value global = find_global(name);
  if (!global.is_undefined()) return global;
  return Value::undefined_name(name);
}

void Renderer::eval_args(const Arguments& args, Scope& scope, CallArgs& out) {
  out.positional.reserve(args.positional.size());
  for (const ExprPtr& arg : args.positional) out.positional.push_back(eval(*arg, scope));
  for (const auto& [name, arg] : args.keyword) out.keyword.emplace_back(name, eval(*arg, scope));
  if (args.star_args) {
    const Value extra = eval(*args.star_args, scope);
    offset_ = args.star_args->offset;
    for (Value& item : iterate(extra)) out.positional.push_back(std::move(item));
  }
  if (args.star_kwargs) {
    const Value extra = eval(*args.star_kwargs, scope);
    offset_ = args.star_kwargs->offset;
    if (!extra.is_dict()) throw Error(ErrorKind::Type, "argument after ** must be a mapping, not " + std::string(type_name(extra)));
    for (const auto& [key, value] : extra.as_dict().entries) {
      if (!key.is_string()) throw Error(ErrorKind::Type, "keywords must be strings");
      out.keyword.emplace_back(key.as_string(), value);
    }
  }
}

Value Renderer::eval_call(const CallExpr& expr, Scope& scope, const Value* caller) {
  // object.method(...) on str/list/dict calls the method directly.
  if (expr.callee->kind == ExprKind::GetAttr) {
    const auto& callee = static_cast<const GetAttrExpr&>(*expr.callee);
    const Value object = eval(*callee.object, scope);
    if (object.is_string() || object.is_list() || object.is_dict()) {
      CallArgs args;
      eval_args(expr.args, scope, args);
      if (caller != nullptr) args.keyword.emplace_back("caller", *caller);
      offset_ = expr.offset;
      Value result;
      if (call_method(*this, object, callee.name, args, &result)) return result;
      offset_ = callee.offset;
      const Value function = get_attribute(object, callee.name);
      offset_ = expr.offset;
      return call(function, args);
    }
    offset_ = callee.offset;
    const Value function = get_attribute(object, callee.name);
    CallArgs args;
    eval_args(expr.args, scope, args);
    if (caller != nullptr) args.keyword.emplace_back("caller", *caller);
    offset_ = expr.offset;
    return call(function, args);
  }
  const Value function = eval(*expr.callee, scope);
  CallArgs args;
  eval_args(expr.args, scope, args);
  if (caller != nullptr) args.keyword.emplace_back("caller", *caller);
  offset_ = expr.offset;
  return call(function, args);
}

Value Renderer::eval_filter(const FilterExpr& expr, Scope& scope, const Value* operand_override) {
  const Value operand = operand_override != nullptr ? *operand_override : eval(*expr.operand, scope);
  CallArgs args;
  eval_args(expr.args, scope, args);
  offset_ = expr.offset;
  if (expr.kind == ExprKind::Filter) {
    if (expr.filter == nullptr) throw Error(ErrorKind::Runtime, "No filter named " + repr_string(expr.name) + " found.");
    return expr.filter(*this, operand, args);
  }
  if (expr.test == nullptr) throw Error(ErrorKind::Runtime, "No test named " + repr_string(expr.name) + " found.");
  return Value::boolean(expr.test(*this, operand, args));
}

Value Renderer::eval(const Expr& expr, Scope& scope) {
  DepthGuard depth(eval_depth_, kMaxEvalDepth, "template nested too deeply while rendering");
  switch (expr.kind) {
    case ExprKind::Literal: return static_cast<const LiteralExpr&>(expr).value;
    case ExprKind::Name: return lookup(static_cast<const NameExpr&>(expr).name, scope);
    case ExprKind::List:
    case ExprKind::Tuple: {
      const auto& node = static_cast<const SequenceExpr&>(expr);
      std::vector<Value> items;
      items.reserve(node.items.size());
      for (const ExprPtr& item : node.items) items.push_back(eval(*item, scope));
      offset_ = expr.offset;
      return Value::list(std::move(items), expr.kind == ExprKind::Tuple ? SequenceKind::Tuple : SequenceKind::List);
    }
    case ExprKind::Dict: {
      const auto& node = static_cast<const DictExpr&>(expr);
      auto dict = std::make_shared<Dict>();
      for (const auto& [key_expr, value_expr] : node.items) {
        Value key = eval(*key_expr, scope);
        Value value = eval(*value_expr, scope);
        if (!is_hashable(key)) {
          offset_ = key_expr->offset;
          throw Error(ErrorKind::Type, "unhashable type: " + repr_string(type_name(key)));
        }
        offset_ = expr.offset;
        dict->set(std::move(key), std::move(value));
      }
      return Value::dict(std::move(dict));
    }
    case ExprKind::GetAttr: {
      const auto& node = static_cast<const GetAttrExpr&>(expr);
      const Value object = eval(*node.object, scope);
      offset_ = expr.offset;
      return get_attribute(object, node.name);
    }
    case ExprKind::GetItem: {
      const auto& node = static_cast<const GetItemExpr&>(expr);
      const Value object = eval(*node.object, scope);
      if (node.key->kind == ExprKind::Slice) {
        const auto& range = static_cast<const SliceExpr&>(*node.key);
        const Value start = range.start ? eval(*range.start, scope) : Value::none();
        const Value stop = range.stop ? eval(*range.stop, scope) : Value::none();
        const Value step_value = range.step ? eval(*range.step, scope) : Value::none();
        offset_ = expr.offset;
        std::optional<Value> result = slice(object, start, stop, step_value);
        if (result) return std::move(*result);
        return Value::undefined(object_type_repr(object) + " has no element slice");
      }
      const Value key = eval(*node.key, scope);
      offset_ = expr.offset;
      return get_item(object, key);
    }
    case ExprKind::Slice: throw Error(ErrorKind::Syntax, "slice outside of a subscript", expr.offset);
    case ExprKind::Unary: {
      const auto& node = static_cast<const UnaryExpr&>(expr);
      const Value operand = eval(*node.operand, scope);
      offset_ = expr.offset;
      return unary_operation(node.op, operand);
    }
    case ExprKind::Binary: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      const Value left = eval(*node.left, scope);
      const Value right = eval(*node.right, scope);
      offset_ = expr.offset;
      return binary_operation(node.op, left, right, options_.max_output_bytes);
    }
    case ExprKind::And: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      Value left = eval(*node.left, scope);
      if (!truthy(left)) return left;
      return eval(*node.right, scope);
    }
    case ExprKind::Or: {
      const auto& node = static_cast<const BinaryExpr&>(expr);
      Value left = eval(*node.left, scope);
      if (truthy(left)) return left;
      return eval(*node.right, scope);
    }
    case ExprKind::Compare: {
      const auto& node = static_cast<const CompareExpr&>(expr);
      Value left = eval(*node.first, scope);
      for (const auto& operand : node.rest) {
        Value right = eval(*operand.expr, scope);
        offset_ = operand.offset;
        bool result = false;
        switch (operand.op) {
          case CompareOp::Eq: result = equals(left, right); break;
          case CompareOp::Ne: result = !equals(left, right); break;
          case CompareOp::Lt: result = compare(left, right, "<"); break;
          case CompareOp::Le: result = compare(left, right, "<="); break;
          case CompareOp::Gt: result = compare(left, right, ">"); break;
          case CompareOp::Ge: result = compare(left, right, ">="); break;
          case CompareOp::In: result = contains(right, left); break;
          case CompareOp::NotIn: result = !contains(right, left); break;
        }
        if (!result) return Value::boolean(false);
        left = std::move(right);
      }
      return Value::boolean(true);
    }
    case ExprKind::Condition: {
      const auto& node = static_cast<const ConditionExpr&>(expr);
      if (truthy(eval(*node.test, scope))) return eval(*node.then, scope);
      if (node.otherwise) return eval(*node.otherwise, scope);
      return Value::undefined("the inline if-expression evaluated to false and no else section was defined.");
    }
    case ExprKind::Call: return eval_call(static_cast<const CallExpr&>(expr), scope, nullptr);
    case ExprKind::Filter:
    case ExprKind::Test: return eval_filter(static_cast<const FilterExpr&>(expr), scope, nullptr);
  }
  return Value();
}

// ---- environment operations -----------------------------------------------------------------

Value Renderer::get_attribute(const Value& object, std::string_view name) {
  switch (object.kind()) {
    case ValueKind::Undefined: object.throw_undefined();
    case ValueKind::Dict: {
      // Python attribute lookup first: d.items is the method even when a key "items" exists.
      Value method = find_method(object, name, options_.allow_mutation);
      if (!method.is_undefined() || method.undefined_info() != nullptr) return method;
      if (const Value* value = object.as_dict().find(name)) return *value;
      return Value::missing_attribute(object, name);
    }
    case ValueKind::String:
    case ValueKind::List: {
      Value method = find_method(object, name, options_.allow_mutation);
      if (!method.is_undefined() || method.undefined_info() != nullptr) return method;
      return Value::missing_attribute(object, name);
    }
    case ValueKind::Object: return object.as_object().attribute(name);
    default: return Value::missing_attribute(object, name);
  }
}

Value Renderer::get_item(const Value& object, const Value& key) {
  switch (object.kind()) {
    case ValueKind::Undefined: object.throw_undefined();
    case ValueKind::Dict: {
      if (is_hashable(key)) {
        if (const Value* value = object.as_dict().find(key)) return *value;
      }
      break;
    }
    case ValueKind::List: {
      const List& list = object.as_list();
      if ((list.kind == SequenceKind::List || list.kind == SequenceKind::Tuple) && key.is_integral()) {
        int64_t index = key.as_int();
        const int64_t size = static_cast<int64_t>(list.items.size());
        if (index < 0) index += size;
        if (index >= 0 && index < size) return list.items[static_cast<size_t>(index)];
        return Value::missing_element(object, key);
      }
      break;
    }
    case ValueKind::String: {
      if (key.is_integral()) {
        const std::u32string chars = unicode::to_u32(object.as_string());
        int64_t index = key.as_int();
        const int64_t size = static_cast<int64_t>(chars.size());
        if (index < 0) index += size;
        if (index >= 0 && index < size) {
          std::string out;
          unicode::append_utf8(out, chars[static_cast<size_t>(index)]);
          return Value::string(std::move(out));
        }
        return Value::missing_element(object, key);
      }
      break;
    }
    default: break;
  }
  // jinja2 falls back to getattr for string keys: d['items'] is the method when no such key.
  if (key.is_string()) return get_attribute(object, key.as_string());
  return Value::missing_element(object, key);
}

Value Renderer::call(const Value& callee, CallArgs& args) {
  if (callee.is_callable()) return callee.as_callable().function(*this, args);
  if (callee.is_undefined()) callee.throw_undefined();
  throw Error(ErrorKind::Type, repr_string(type_name(callee)) + " object is not callable");
}

std::vector<Value> Renderer::iterate(const Value& value) {
  switch (value.kind()) {
    case ValueKind::Undefined: return {};
    case ValueKind::List: {
      List& list = value.as_list();
      if (list.kind == SequenceKind::Generator) {
        std::vector<Value> rest(list.items.begin() + static_cast<std::ptrdiff_t>(list.consumed), list.items.end());
        list.consumed = list.items.size();
        return rest;
      }
      return list.items;
    }
    case ValueKind::Dict: {
      std::vector<Value> keys;
      keys.reserve(value.as_dict().size());
      for (const auto& entry : value.as_dict().entries) keys.push_back(entry.first);
      return keys;
    }
    case ValueKind::String: {
      std::vector<Value> chars;
      const std::string& text = value.as_string();
      for (size_t pos = 0; pos < text.size();) {
        const size_t start = pos;
        unicode::decode(text, pos);
        chars.push_back(Value::string(text.substr(start, pos - start)));
      }
      return chars;
    }
    default: throw Error(ErrorKind::Type, repr_string(type_name(value)) + " object is not iterable");
  }
}

Value Renderer::apply_filter(std::string_view name, const Value& operand, CallArgs& args) {
  const FilterFunction filter = find_filter(name);
  if (filter == nullptr) throw Error(ErrorKind::Runtime, "No filter named " + repr_string(name) + ".");
  return filter(*this, operand, args);
}

bool Renderer::apply_test(std::string_view name, const Value& operand, CallArgs& args) {
  const TestFunction test = find_test(name);
  if (test == nullptr) throw Error(ErrorKind::Runtime, "No test named " + repr_string(name) + ".");
  return test(*this, operand, args);
}

}  // namespace rackserve::jinja
