// Renderer: executes a parsed template against a context. It owns the per-render state
// (scopes, output limits, step counter) and offers builtins the environment operations
// jinja2's sandbox provides: getattr/getitem with undefined fallbacks, calls, iteration.
// Scoping follows jinja2: `for` bodies (per iteration), macros, `with` and block sets get
// their own scope; `if` does not; `set` writes to the innermost scope.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "text/jinja/ast.h"
#include "text/jinja/options.h"
#include "text/jinja/value.h"

namespace rackserve::jinja {

// Variables of one scope; lookups walk to the parent. Parents outlive their children:
// a child is created while its parent executes, or is a macro scope whose parent was pinned.
struct Scope {
  explicit Scope(const Scope* parent) : parent(parent) {}
  const Value* find(std::string_view name) const;
  void set(std::string_view name, Value value);

  const Scope* parent;
  std::vector<std::pair<std::string, Value>> vars;
};

class Renderer {
 public:
  // `globals` is the outermost scope (the render context); it must outlive the render.
  Renderer(const TemplateOptions& options, const Scope& globals);
  ~Renderer();

  std::string render(const Body& body);

  const TemplateOptions& options() const { return options_; }
  size_t max_size() const { return options_.max_output_bytes; }

  // jinja2's environment.getattr / getitem in the sandbox: missing -> undefined value.
  Value get_attribute(const Value& object, std::string_view name);
  Value get_item(const Value& object, const Value& key);
  Value call(const Value& callee, CallArgs& args);
  // Python iter(), materialized (a generator is consumed).
  std::vector<Value> iterate(const Value& value);
  Value apply_filter(std::string_view name, const Value& operand, CallArgs& args);
  bool apply_test(std::string_view name, const Value& operand, CallArgs& args);
  // Objects created by this render (namespaces, loops) are release()d when it ends, which
  // breaks the reference cycles a template can build (ns.me = ns).
  void track(std::shared_ptr<Object> object);
  // Lists and dicts changed in place (allow_mutation only) are emptied when the render ends,
  // for the same reason; with allow_mutation, do not pass containers you still need.
  void track_mutated(const Value& container);
  // Counts one unit of work (loop iteration, macro call) against options().max_steps.
  void step();

 private:
  enum class Flow { Normal, Break, Continue };
  friend class MacroInvocation;

  Flow exec_body(const Body& body, Scope& scope, std::string& out);
  Flow exec(const Stmt& stmt, Scope& scope, std::string& out);
  void exec_for(const ForStmt& stmt, Scope& scope, std::string& out);
  void exec_call_block(const CallBlockStmt& stmt, Scope& scope, std::string& out);
  std::string render_block(const Body& body, Scope& parent);
  Value apply_chain(const FilterChain& filters, Value value, Scope& scope);
  void assign(const Target& target, const Value& value, Scope& scope);
  void append_output(std::string& out, const Value& value);

  Value eval(const Expr& expr, Scope& scope);
  Value eval_call(const CallExpr& expr, Scope& scope, const Value* caller);
  void eval_args(const Arguments& args, Scope& scope, CallArgs& out);
  Value eval_filter(const FilterExpr& expr, Scope& scope, const Value* operand);
  Value lookup(std::string_view name, const Scope& scope) const;

  Value make_macro(const MacroDefinition& macro, Scope& scope);
  Value invoke_macro(const MacroDefinition& macro, const Scope* closure, CallArgs& args);
  std::shared_ptr<Scope> new_scope(const Scope* parent);

  const TemplateOptions& options_;
  const Scope& globals_;
  uint64_t steps_ = 0;
  int eval_depth_ = 0;
  int call_depth_ = 0;
  uint32_t offset_ = 0;  // the node being evaluated, for errors raised by builtins
  // Scopes captured by macros stay alive until the render ends.
  std::vector<std::shared_ptr<Scope>> pinned_;
  std::vector<std::shared_ptr<Object>> created_;
  std::vector<Value> mutated_;
  // Macros check this so a macro that outlives its render (only possible with mutation
  // into caller-owned lists) fails instead of touching freed state.
  std::shared_ptr<bool> alive_;
};

}  // namespace rackserve::jinja
