// Recursive-descent parser mirroring jinja2/parser.py, then a resolve pass that binds filter
// and test names to builtins (deferring unknown ones inside `if` and inline-if, as jinja2's
// compiler does) and records which macros use caller/varargs/kwargs.
#include "text/jinja/parser.h"

#include <initializer_list>
#include <string>
#include <string_view>

#include "text/jinja/error.h"
#include "text/jinja/value_format.h"

namespace rackserve::jinja {

namespace {

using Names = std::initializer_list<std::string_view>;

class Parser {
 public:
  explicit Parser(std::vector<Token> tokens) : tokens_(std::move(tokens)) {}

  Body parse_template() {
    Body body = subparse({});
    resolve_body(body, false);
    return body;
  }

 private:
  // Raises the depth for the lifetime of the guard; also used once per operator in a
  // left-associative chain, whose tree grows one level per operator.
  class DepthGuard {
   public:
    explicit DepthGuard(Parser& parser) : parser_(parser), saved_(parser.depth_) {}
    DepthGuard(Parser& parser, uint32_t offset) : DepthGuard(parser) { step(offset); }
    ~DepthGuard() { parser_.depth_ = saved_; }
    void step(uint32_t offset) {
      if (++parser_.depth_ > kMaxParseDepth) parser_.fail("template nested too deeply", offset);
    }

   private:
    Parser& parser_;
    int saved_;
  };

  // ---- token stream -------------------------------------------------------------------

  const Token& current() const { return tokens_[index_]; }
  const Token& look() const { return tokens_[index_ + 1 < tokens_.size() ? index_ + 1 : index_]; }
  const Token& next() {
    const Token& token = tokens_[index_];
    if (index_ + 1 < tokens_.size()) ++index_;
    return token;
  }
  bool test(TokenType type) const { return current().type == type; }
  bool test_name(std::string_view name) const { return test(TokenType::Name) && current().text == name; }
  bool test_any_name(Names names) const {
    if (!test(TokenType::Name)) return false;
    for (std::string_view name : names) {
      if (current().text == name) return true;
    }
    return false;
  }
  bool skip_if(TokenType type) {
    if (!test(type)) return false;
    next();
    return true;
  }
  bool skip_name(std::string_view name) {
    if (!test_name(name)) return false;
    next();
    return true;
  }

  [[noreturn]] void fail(std::string message, uint32_t offset) const {
    throw Error(ErrorKind::Syntax, std::move(message), offset);
  }

  static std::string describe(const Token& token) {
    if (token.type == TokenType::Name) return token.text;
    return describe_token_type(token.type);
  }

  const Token& expect(TokenType type) {
    if (!test(type)) {
      if (test(TokenType::Eof)) {
        fail(std::string("unexpected end of template, expected '") + describe_token_type(type) + "'.", current().offset);
      }
      fail(std::string("expected token '") + describe_token_type(type) + "', got '" + describe(current()) + "'",
           current().offset);
    }
    return next();
  }

  void expect_name(std::string_view name) {
    if (!test_name(name)) {
      if (test(TokenType::Eof)) fail("unexpected end of template, expected '" + std::string(name) + "'.", current().offset);
      fail("expected token '" + std::string(name) + "', got '" + describe(current()) + "'", current().offset);
    }
    next();
  }

  // ---- statements ---------------------------------------------------------------------

  Body subparse(Names end_tokens) {
    const bool has_end = end_tokens.size() > 0;
    if (has_end) end_token_stack_.push_back(end_tokens);
    Body body;
    while (true) {
      const Token& token = current();
      if (token.type == TokenType::Eof) break;
      if (token.type == TokenType::Data) {
        body.push_back(std::make_unique<TextStmt>(token.offset, token.text));
        next();
      } else if (token.type == TokenType::VariableBegin) {
        next();
        ExprPtr expr = parse_tuple(false, true, {}, false);
        body.push_back(std::make_unique<OutputStmt>(token.offset, std::move(expr)));
        expect(TokenType::VariableEnd);
      } else if (token.type == TokenType::BlockBegin) {
        next();
        if (has_end && test_any_name(end_tokens)) break;
        parse_statement(body);
        expect(TokenType::BlockEnd);
      } else {
        fail("unexpected '" + describe(token) + "'", token.offset);
      }
    }
    if (has_end) end_token_stack_.pop_back();
    return body;
  }

  Body parse_statements(Names end_tokens, bool drop_needle) {
    DepthGuard guard(*this, current().offset);
    skip_if(TokenType::Colon);
    expect(TokenType::BlockEnd);
    Body body = subparse(end_tokens);
    if (test(TokenType::Eof)) fail_unknown_tag(nullptr, end_tokens, current().offset);
    if (drop_needle) next();
    return body;
  }

  [[noreturn]] void fail_unknown_tag(const std::string* name, Names extra_end, uint32_t offset) const {
    std::vector<std::vector<std::string_view>> stack;
    for (const auto& names : end_token_stack_) stack.emplace_back(names.begin(), names.end());
    if (extra_end.size() > 0 && (stack.empty() || stack.back() != std::vector<std::string_view>(extra_end))) {
      stack.emplace_back(extra_end.begin(), extra_end.end());
    }
    std::string message = name == nullptr ? "Unexpected end of template." : "Encountered unknown tag '" + *name + "'.";
    if (!stack.empty()) {
      std::string looking;
      bool expected_somewhere = false;
      for (const auto& names : stack) {
        for (std::string_view n : names) {
          if (name != nullptr && n == *name) expected_somewhere = true;
        }
      }
      for (size_t i = 0; i < stack.back().size(); ++i) {
        if (i > 0) looking += " or ";
        looking += "'" + std::string(stack.back()[i]) + "'";
      }
      if (expected_somewhere) {
        message += " You probably made a nesting mistake. Jinja is expecting this tag, but currently looking for " +
                   looking + ".";
      } else {
        message += " Jinja was looking for the following tags: " + looking + ".";
      }
    }
    if (!tag_stack_.empty()) message += " The innermost block that needs to be closed is '" + tag_stack_.back() + "'.";
    fail(message, offset);
  }

  void parse_statement(Body& body) {
    const Token& token = current();
    if (token.type != TokenType::Name) fail("tag name expected", token.offset);
    const std::string tag = token.text;
    tag_stack_.push_back(tag);
    if (tag == "for") {
      body.push_back(parse_for());
    } else if (tag == "if") {
      body.push_back(parse_if());
    } else if (tag == "set") {
      body.push_back(parse_set());
    } else if (tag == "macro") {
      body.push_back(parse_macro());
    } else if (tag == "call") {
      body.push_back(parse_call_block());
    } else if (tag == "filter") {
      body.push_back(parse_filter_block());
    } else if (tag == "with") {
      body.push_back(parse_with());
    } else if (tag == "print") {
      next();
      bool first = true;
      while (!test(TokenType::BlockEnd)) {
        if (!first) expect(TokenType::Comma);
        first = false;
        const uint32_t offset = current().offset;
        body.push_back(std::make_unique<OutputStmt>(offset, parse_expression(true)));
      }
    } else if (tag == "break" || tag == "continue") {
      if (loop_depth_ == 0) fail("'" + tag + "' outside of a loop", token.offset);
      next();
      body.push_back(std::make_unique<Stmt>(tag == "break" ? StmtKind::Break : StmtKind::Continue, token.offset));
    } else if (tag == "generation") {  // transformers' AssistantTracker extension
      next();
      auto group = std::make_unique<GroupStmt>(token.offset);
      group->body = parse_statements({"endgeneration"}, true);
      body.push_back(std::move(group));
    } else if (tag == "block" || tag == "extends" || tag == "include" || tag == "from" || tag == "import" ||
               tag == "autoescape") {
      fail("the '" + tag + "' tag is not supported by this engine (chat templates are single files)", token.offset);
    } else {
      tag_stack_.pop_back();
      fail_unknown_tag(&tag, {}, token.offset);
    }
    tag_stack_.pop_back();
  }

  StmtPtr parse_for() {
    auto node = std::make_unique<ForStmt>(next().offset);
    node->target = parse_assign_target(true, false, {"in"}, false);
    expect_name("in");
    node->iterable = parse_tuple(false, false, {"recursive"}, false);
    if (skip_name("if")) node->filter = parse_expression(true);
    if (test_name("recursive")) fail("recursive loops are not supported", current().offset);
    ++loop_depth_;
    node->body = parse_statements({"endfor", "else"}, false);
    --loop_depth_;
    if (next().text != "endfor") node->otherwise = parse_statements({"endfor"}, true);
    return node;
  }

  StmtPtr parse_if() {
    auto node = std::make_unique<IfStmt>(next().offset);
    while (true) {
      IfStmt::Branch branch;
      branch.test = parse_tuple(false, false, {}, false);
      branch.body = parse_statements({"elif", "else", "endif"}, false);
      node->branches.push_back(std::move(branch));
      const Token& token = next();
      if (token.text == "elif") continue;
      if (token.text == "else") node->otherwise = parse_statements({"endif"}, true);
      break;
    }
    return node;
  }

  StmtPtr parse_set() {
    const uint32_t offset = next().offset;
    Target target = parse_assign_target(true, false, {}, true);
    if (skip_if(TokenType::Assign)) {
      auto node = std::make_unique<SetStmt>(offset);
      node->target = std::move(target);
      node->value = parse_tuple(false, true, {}, false);
      return node;
    }
    auto node = std::make_unique<SetBlockStmt>(offset);
    node->target = std::move(target);
    node->filters = parse_filter_chain(false);
    node->body = parse_statements({"endset"}, true);
    return node;
  }

  // Macro and call bodies form their own function scope: break/continue cannot cross them.
  Body parse_function_body(Names end) {
    const int saved = loop_depth_;
    loop_depth_ = 0;
    Body body = parse_statements(end, true);
    loop_depth_ = saved;
    return body;
  }

  StmtPtr parse_macro() {
    auto node = std::make_unique<MacroStmt>(next().offset);
    node->macro.name = parse_assign_target(false, true, {}, false).name;
    parse_signature(node->macro);
    node->macro.body = parse_function_body({"endmacro"});
    return node;
  }

  void parse_signature(MacroDefinition& macro) {
    expect(TokenType::LParen);
    while (!test(TokenType::RParen)) {
      if (!macro.parameters.empty()) expect(TokenType::Comma);
      if (test(TokenType::RParen)) break;
      Parameter parameter;
      const uint32_t offset = current().offset;
      parameter.name = parse_assign_target(false, true, {}, false).name;
      if (skip_if(TokenType::Assign)) {
        parameter.default_value = parse_expression(true);
      } else if (!macro.parameters.empty() && macro.parameters.back().default_value) {
        fail("non-default argument follows default argument", offset);
      }
      macro.parameters.push_back(std::move(parameter));
    }
    expect(TokenType::RParen);
  }

  StmtPtr parse_call_block() {
    auto node = std::make_unique<CallBlockStmt>(next().offset);
    node->caller.name = "caller";
    if (test(TokenType::LParen)) parse_signature(node->caller);
    const uint32_t offset = current().offset;
    ExprPtr call = parse_expression(true);
    if (call->kind != ExprKind::Call) fail("expected call", offset);
    node->call.reset(static_cast<CallExpr*>(call.release()));
    node->caller.body = parse_function_body({"endcall"});
    return node;
  }

  StmtPtr parse_filter_block() {
    auto node = std::make_unique<FilterBlockStmt>(next().offset);
    node->filters = parse_filter_chain(true);
    node->body = parse_statements({"endfilter"}, true);
    return node;
  }

  StmtPtr parse_with() {
    auto node = std::make_unique<WithStmt>(next().offset);
    while (!test(TokenType::BlockEnd)) {
      if (!node->assignments.empty()) expect(TokenType::Comma);
      Target target = parse_assign_target(true, false, {}, false);
      expect(TokenType::Assign);
      node->assignments.emplace_back(std::move(target), parse_expression(true));
    }
    node->body = parse_statements({"endwith"}, true);
    return node;
  }

  static bool is_constant_name(std::string_view name) {
    return name == "true" || name == "false" || name == "none" || name == "True" || name == "False" || name == "None";
  }

  Target to_target(const Expr& expr) const {
    Target target;
    target.offset = expr.offset;
    if (expr.kind == ExprKind::Name) {
      target.kind = Target::Kind::Name;
      target.name = static_cast<const NameExpr&>(expr).name;
      return target;
    }
    if (expr.kind == ExprKind::Tuple) {
      target.kind = Target::Kind::Tuple;
      for (const ExprPtr& item : static_cast<const SequenceExpr&>(expr).items) target.items.push_back(to_target(*item));
      return target;
    }
    const char* what = expr.kind == ExprKind::Literal ? "const" : expr.kind == ExprKind::List ? "list" : "expression";
    fail(std::string("can't assign to '") + what + "'", expr.offset);
  }

  Target parse_assign_target(bool with_tuple, bool name_only, Names extra_end, bool with_namespace) {
    if (with_namespace && look().type == TokenType::Dot) {
      Target target;
      target.kind = Target::Kind::NamespaceAttribute;
      const Token& name = expect(TokenType::Name);
      target.offset = name.offset;
      target.name = name.text;
      next();
      target.attribute = expect(TokenType::Name).text;
      return target;
    }
    if (name_only) {
      const Token& token = expect(TokenType::Name);
      if (is_constant_name(token.text)) fail("can't assign to 'const'", token.offset);
      Target target;
      target.offset = token.offset;
      target.name = token.text;
      return target;
    }
    ExprPtr expr = with_tuple ? parse_tuple(true, true, extra_end, false) : parse_primary();
    return to_target(*expr);
  }

  FilterChain parse_filter_chain(bool start_inline) {
    FilterChain chain;
    while (test(TokenType::Pipe) || start_inline) {
      if (!start_inline) next();
      start_inline = false;
      chain.push_back(parse_filter_call(nullptr, ExprKind::Filter));
    }
    return chain;
  }

  // ---- expressions --------------------------------------------------------------------

  ExprPtr parse_expression(bool with_condexpr) { return with_condexpr ? parse_condexpr() : parse_or(); }

  ExprPtr parse_condexpr() {
    DepthGuard guard(*this, current().offset);
    const uint32_t offset = current().offset;
    ExprPtr expr = parse_or();
    while (skip_name("if")) {
      guard.step(current().offset);
      auto node = std::make_unique<ConditionExpr>(offset);
      node->then = std::move(expr);
      node->test = parse_or();
      if (skip_name("else")) node->otherwise = parse_condexpr();
      expr = std::move(node);
    }
    return expr;
  }

  ExprPtr parse_or() {
    DepthGuard guard(*this);
    ExprPtr left = parse_and();
    while (test_name("or")) {
      const uint32_t offset = next().offset;
      guard.step(offset);
      ExprPtr right = parse_and();
      left = std::make_unique<BinaryExpr>(ExprKind::Or, offset, BinaryOp::Add, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_and() {
    DepthGuard guard(*this);
    ExprPtr left = parse_not();
    while (test_name("and")) {
      const uint32_t offset = next().offset;
      guard.step(offset);
      ExprPtr right = parse_not();
      left = std::make_unique<BinaryExpr>(ExprKind::And, offset, BinaryOp::Add, std::move(left), std::move(right));
    }
    return left;
  }

  ExprPtr parse_not() {
    if (test_name("not")) {
      const uint32_t offset = next().offset;
      DepthGuard guard(*this, offset);
      return std::make_unique<UnaryExpr>(offset, UnaryOp::Not, parse_not());
    }
    return parse_compare();
  }

  ExprPtr parse_compare() {
    DepthGuard guard(*this);
    const uint32_t offset = current().offset;
    ExprPtr expr = parse_math1();
    std::unique_ptr<CompareExpr> compare;
    while (true) {
      CompareOp op;
      const uint32_t op_offset = current().offset;
      switch (current().type) {
        case TokenType::Eq: op = CompareOp::Eq; break;
        case TokenType::Ne: op = CompareOp::Ne; break;
        case TokenType::Lt: op = CompareOp::Lt; break;
        case TokenType::Le: op = CompareOp::Le; break;
        case TokenType::Gt: op = CompareOp::Gt; break;
        case TokenType::Ge: op = CompareOp::Ge; break;
        default:
          if (test_name("in")) {
            op = CompareOp::In;
          } else if (test_name("not") && look().type == TokenType::Name && look().text == "in") {
            next();
            op = CompareOp::NotIn;
          } else {
            return compare ? std::move(compare) : std::move(expr);
          }
      }
      next();
      guard.step(op_offset);
      if (!compare) compare = std::make_unique<CompareExpr>(offset, std::move(expr));
      compare->rest.push_back({op, parse_math1(), op_offset});
    }
  }

  ExprPtr parse_binary_chain(ExprPtr (Parser::*operand)(), std::initializer_list<std::pair<TokenType, BinaryOp>> ops) {
    DepthGuard guard(*this);
    ExprPtr left = (this->*operand)();
    while (true) {
      const BinaryOp* found = nullptr;
      for (const auto& [type, op] : ops) {
        if (test(type)) found = &op;
      }
      if (found == nullptr) return left;
      const uint32_t offset = next().offset;
      guard.step(offset);
      ExprPtr right = (this->*operand)();
      left = std::make_unique<BinaryExpr>(ExprKind::Binary, offset, *found, std::move(left), std::move(right));
    }
  }

  ExprPtr parse_math1() {
    return parse_binary_chain(&Parser::parse_concat, {{TokenType::Add, BinaryOp::Add}, {TokenType::Sub, BinaryOp::Sub}});
  }
  ExprPtr parse_concat() { return parse_binary_chain(&Parser::parse_math2, {{TokenType::Tilde, BinaryOp::Concat}}); }
  ExprPtr parse_math2() {
    return parse_binary_chain(&Parser::parse_pow, {{TokenType::Mul, BinaryOp::Mul},
                                                   {TokenType::Div, BinaryOp::Div},
                                                   {TokenType::FloorDiv, BinaryOp::FloorDiv},
                                                   {TokenType::Mod, BinaryOp::Mod}});
  }
  ExprPtr parse_pow() { return parse_binary_chain(&Parser::parse_unary_filtered, {{TokenType::Pow, BinaryOp::Pow}}); }
  ExprPtr parse_unary_filtered() { return parse_unary(true); }

  ExprPtr parse_unary(bool with_filter) {
    DepthGuard guard(*this);
    ExprPtr node;
    const uint32_t offset = current().offset;
    if (skip_if(TokenType::Sub)) {
      guard.step(offset);
      node = std::make_unique<UnaryExpr>(offset, UnaryOp::Negate, parse_unary(false));
    } else if (skip_if(TokenType::Add)) {
      guard.step(offset);
      node = std::make_unique<UnaryExpr>(offset, UnaryOp::Plus, parse_unary(false));
    } else {
      node = parse_primary();
    }
    node = parse_postfix(std::move(node), guard);
    if (with_filter) node = parse_filter_expr(std::move(node), guard);
    return node;
  }

  ExprPtr parse_primary() {
    DepthGuard guard(*this);
    const Token& token = current();
    switch (token.type) {
      case TokenType::Name: {
        next();
        const std::string& name = token.text;
        if (name == "true" || name == "True") return std::make_unique<LiteralExpr>(token.offset, Value::boolean(true));
        if (name == "false" || name == "False") return std::make_unique<LiteralExpr>(token.offset, Value::boolean(false));
        if (name == "none" || name == "None") return std::make_unique<LiteralExpr>(token.offset, Value::none());
        return std::make_unique<NameExpr>(token.offset, name);
      }
      case TokenType::String: {
        std::string text = next().text;
        while (test(TokenType::String)) text += next().text;
        return std::make_unique<LiteralExpr>(token.offset, Value::string(std::move(text)));
      }
      case TokenType::Integer: next(); return std::make_unique<LiteralExpr>(token.offset, Value::integer(token.int_value));
      case TokenType::Float: next(); return std::make_unique<LiteralExpr>(token.offset, Value::number(token.float_value));
      case TokenType::LParen: {
        guard.step(token.offset);
        next();
        ExprPtr node = parse_tuple(false, true, {}, true);
        expect(TokenType::RParen);
        return node;
      }
      case TokenType::LBracket: guard.step(token.offset); return parse_list();
      case TokenType::LBrace: guard.step(token.offset); return parse_dict();
      default: fail("unexpected '" + describe(token) + "'", token.offset);
    }
  }

  bool is_tuple_end(Names extra_end) const {
    if (test(TokenType::VariableEnd) || test(TokenType::BlockEnd) || test(TokenType::RParen)) return true;
    return extra_end.size() > 0 && test_any_name(extra_end);
  }

  // simplified: items are primaries (assignment targets).
  ExprPtr parse_tuple(bool simplified, bool with_condexpr, Names extra_end, bool explicit_parentheses) {
    const uint32_t offset = current().offset;
    std::vector<ExprPtr> items;
    bool is_tuple = false;
    while (true) {
      if (!items.empty()) expect(TokenType::Comma);
      if (is_tuple_end(extra_end)) break;
      items.push_back(simplified ? parse_primary() : parse_expression(with_condexpr));
      if (test(TokenType::Comma)) {
        is_tuple = true;
      } else {
        break;
      }
    }
    if (!is_tuple) {
      if (!items.empty()) return std::move(items[0]);
      if (!explicit_parentheses) fail("Expected an expression, got '" + describe(current()) + "'", current().offset);
    }
    auto tuple = std::make_unique<SequenceExpr>(ExprKind::Tuple, offset);
    tuple->items = std::move(items);
    return tuple;
  }

  ExprPtr parse_list() {
    auto node = std::make_unique<SequenceExpr>(ExprKind::List, expect(TokenType::LBracket).offset);
    while (!test(TokenType::RBracket)) {
      if (!node->items.empty()) expect(TokenType::Comma);
      if (test(TokenType::RBracket)) break;
      node->items.push_back(parse_expression(true));
    }
    expect(TokenType::RBracket);
    return node;
  }

  ExprPtr parse_dict() {
    auto node = std::make_unique<DictExpr>(expect(TokenType::LBrace).offset);
    while (!test(TokenType::RBrace)) {
      if (!node->items.empty()) expect(TokenType::Comma);
      if (test(TokenType::RBrace)) break;
      ExprPtr key = parse_expression(true);
      expect(TokenType::Colon);
      node->items.emplace_back(std::move(key), parse_expression(true));
    }
    expect(TokenType::RBrace);
    return node;
  }

  ExprPtr parse_postfix(ExprPtr node, DepthGuard& guard) {
    while (true) {
      if (test(TokenType::Dot) || test(TokenType::LBracket)) {
        guard.step(current().offset);
        node = parse_subscript(std::move(node));
      } else if (test(TokenType::LParen)) {
        guard.step(current().offset);
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_filter_expr(ExprPtr node, DepthGuard& guard) {
    while (true) {
      if (test(TokenType::Pipe)) {
        guard.step(current().offset);
        next();
        node = parse_filter_call(std::move(node), ExprKind::Filter);
      } else if (test_name("is")) {
        guard.step(current().offset);
        node = parse_test(std::move(node));
      } else if (test(TokenType::LParen)) {
        guard.step(current().offset);
        node = parse_call(std::move(node));
      } else {
        return node;
      }
    }
  }

  ExprPtr parse_subscript(ExprPtr node) {
    const Token& token = next();
    if (token.type == TokenType::Dot) {
      const Token& attribute = next();
      if (attribute.type == TokenType::Name) {
        return std::make_unique<GetAttrExpr>(attribute.offset, std::move(node), attribute.text);
      }
      if (attribute.type != TokenType::Integer) fail("expected name or number", attribute.offset);
      return std::make_unique<GetItemExpr>(attribute.offset, std::move(node),
                                           std::make_unique<LiteralExpr>(attribute.offset, Value::integer(attribute.int_value)));
    }
    std::vector<ExprPtr> args;
    while (!test(TokenType::RBracket)) {
      if (!args.empty()) expect(TokenType::Comma);
      args.push_back(parse_subscribed());
    }
    expect(TokenType::RBracket);
    ExprPtr key;
    if (args.size() == 1) {
      key = std::move(args[0]);
    } else {
      auto tuple = std::make_unique<SequenceExpr>(ExprKind::Tuple, token.offset);
      tuple->items = std::move(args);
      key = std::move(tuple);
    }
    return std::make_unique<GetItemExpr>(token.offset, std::move(node), std::move(key));
  }

  ExprPtr parse_subscribed() {
    const uint32_t offset = current().offset;
    auto slice = std::make_unique<SliceExpr>(offset);
    if (test(TokenType::Colon)) {
      next();
    } else {
      ExprPtr node = parse_expression(true);
      if (!test(TokenType::Colon)) return node;
      next();
      slice->start = std::move(node);
    }
    if (!test(TokenType::Colon) && !test(TokenType::RBracket) && !test(TokenType::Comma)) {
      slice->stop = parse_expression(true);
    }
    if (test(TokenType::Colon)) {
      next();
      if (!test(TokenType::RBracket) && !test(TokenType::Comma)) slice->step = parse_expression(true);
    }
    return slice;
  }

  ExprPtr parse_call(ExprPtr node) {
    const uint32_t offset = current().offset;
    auto call = std::make_unique<CallExpr>(offset, std::move(node));
    parse_call_args(call->args);
    return call;
  }

  void parse_call_args(Arguments& args) {
    const Token& open = expect(TokenType::LParen);
    const auto ensure = [&](bool ok) {
      if (!ok) fail("invalid syntax for function call expression", open.offset);
    };
    bool require_comma = false;
    while (!test(TokenType::RParen)) {
      if (require_comma) {
        expect(TokenType::Comma);
        if (test(TokenType::RParen)) break;
      }
      if (test(TokenType::Mul)) {
        ensure(!args.star_args && !args.star_kwargs);
        next();
        args.star_args = parse_expression(true);
      } else if (test(TokenType::Pow)) {
        ensure(!args.star_kwargs);
        next();
        args.star_kwargs = parse_expression(true);
      } else if (test(TokenType::Name) && look().type == TokenType::Assign) {
        ensure(!args.star_kwargs);
        std::string key = next().text;
        next();
        args.keyword.emplace_back(std::move(key), parse_expression(true));
      } else {
        ensure(!args.star_args && !args.star_kwargs && args.keyword.empty());
        args.positional.push_back(parse_expression(true));
      }
      require_comma = true;
    }
    expect(TokenType::RParen);
  }

  std::unique_ptr<FilterExpr> parse_filter_call(ExprPtr operand, ExprKind kind) {
    const Token& token = expect(TokenType::Name);
    std::string name = token.text;
    while (test(TokenType::Dot)) {
      next();
      name += "." + expect(TokenType::Name).text;
    }
    auto node = std::make_unique<FilterExpr>(kind, token.offset, std::move(operand), std::move(name));
    if (test(TokenType::LParen)) parse_call_args(node->args);
    return node;
  }

  ExprPtr parse_test(ExprPtr node) {
    const uint32_t offset = next().offset;  // 'is'
    const bool negated = skip_name("not");
    const Token& token = expect(TokenType::Name);
    std::string name = token.text;
    while (test(TokenType::Dot)) {
      next();
      name += "." + expect(TokenType::Name).text;
    }
    auto test_node = std::make_unique<FilterExpr>(ExprKind::Test, token.offset, std::move(node), std::move(name));
    if (test(TokenType::LParen)) {
      parse_call_args(test_node->args);
    } else {
      const TokenType type = current().type;
      const bool starts_argument = type == TokenType::Name || type == TokenType::String || type == TokenType::Integer ||
                                   type == TokenType::Float || type == TokenType::LParen || type == TokenType::LBracket ||
                                   type == TokenType::LBrace;
      if (starts_argument && !test_any_name({"else", "or", "and"})) {
        if (test_name("is")) fail("You cannot chain multiple tests with is", current().offset);
        DepthGuard guard(*this, current().offset);
        ExprPtr arg = parse_primary();
        test_node->args.positional.push_back(parse_postfix(std::move(arg), guard));
      }
    }
    if (negated) return std::make_unique<UnaryExpr>(offset, UnaryOp::Not, std::move(test_node));
    return test_node;
  }

  // ---- resolve pass -------------------------------------------------------------------

  void resolve_args(Arguments& args, bool soft) {
    for (auto& arg : args.positional) resolve_expr(arg.get(), soft);
    for (auto& [name, arg] : args.keyword) resolve_expr(arg.get(), soft);
    resolve_expr(args.star_args.get(), soft);
    resolve_expr(args.star_kwargs.get(), soft);
  }

  void resolve_filter(FilterExpr& node, bool soft) {
    if (node.kind == ExprKind::Filter) {
      node.filter = find_filter(node.name);
      if (node.filter == nullptr && !soft) fail("No filter named " + repr_string(node.name) + ".", node.offset);
    } else {
      node.test = find_test(node.name);
      if (node.test == nullptr && !soft) fail("No test named " + repr_string(node.name) + ".", node.offset);
    }
    resolve_expr(node.operand.get(), soft);
    resolve_args(node.args, soft);
  }

  void resolve_expr(Expr* expr, bool soft) {
    if (expr == nullptr) return;
    switch (expr->kind) {
      case ExprKind::Literal: return;
      case ExprKind::Name: {
        const std::string& name = static_cast<NameExpr*>(expr)->name;
        if (!macro_stack_.empty()) {
          MacroDefinition& macro = *macro_stack_.back();
          if (name == "caller") macro.uses_caller = true;
          if (name == "varargs") macro.uses_varargs = true;
          if (name == "kwargs") macro.uses_kwargs = true;
        }
        return;
      }
      case ExprKind::List:
      case ExprKind::Tuple:
        for (auto& item : static_cast<SequenceExpr*>(expr)->items) resolve_expr(item.get(), soft);
        return;
      case ExprKind::Dict:
        for (auto& [key, value] : static_cast<DictExpr*>(expr)->items) {
          resolve_expr(key.get(), soft);
          resolve_expr(value.get(), soft);
        }
        return;
      case ExprKind::GetAttr: resolve_expr(static_cast<GetAttrExpr*>(expr)->object.get(), soft); return;
      case ExprKind::GetItem: {
        auto* node = static_cast<GetItemExpr*>(expr);
        resolve_expr(node->object.get(), soft);
        resolve_expr(node->key.get(), soft);
        return;
      }
      case ExprKind::Slice: {
        auto* node = static_cast<SliceExpr*>(expr);
        resolve_expr(node->start.get(), soft);
        resolve_expr(node->stop.get(), soft);
        resolve_expr(node->step.get(), soft);
        return;
      }
      case ExprKind::Unary: resolve_expr(static_cast<UnaryExpr*>(expr)->operand.get(), soft); return;
      case ExprKind::Binary:
      case ExprKind::And:
      case ExprKind::Or: {
        auto* node = static_cast<BinaryExpr*>(expr);
        resolve_expr(node->left.get(), soft);
        resolve_expr(node->right.get(), soft);
        return;
      }
      case ExprKind::Compare: {
        auto* node = static_cast<CompareExpr*>(expr);
        resolve_expr(node->first.get(), soft);
        for (auto& operand : node->rest) resolve_expr(operand.expr.get(), soft);
        return;
      }
      case ExprKind::Condition: {
        auto* node = static_cast<ConditionExpr*>(expr);
        resolve_expr(node->test.get(), true);
        resolve_expr(node->then.get(), true);
        resolve_expr(node->otherwise.get(), true);
        return;
      }
      case ExprKind::Call: {
        auto* node = static_cast<CallExpr*>(expr);
        resolve_expr(node->callee.get(), soft);
        resolve_args(node->args, soft);
        return;
      }
      case ExprKind::Filter:
      case ExprKind::Test: resolve_filter(*static_cast<FilterExpr*>(expr), soft); return;
    }
  }

  void resolve_macro(MacroDefinition& macro) {
    macro_stack_.push_back(&macro);
    for (auto& parameter : macro.parameters) resolve_expr(parameter.default_value.get(), false);
    resolve_body(macro.body, false);
    macro_stack_.pop_back();
  }

  void resolve_body(Body& body, bool soft) {
    for (StmtPtr& stmt : body) {
      switch (stmt->kind) {
        case StmtKind::Text:
        case StmtKind::Break:
        case StmtKind::Continue: break;
        case StmtKind::Output: resolve_expr(static_cast<OutputStmt*>(stmt.get())->expr.get(), soft); break;
        case StmtKind::If: {
          auto* node = static_cast<IfStmt*>(stmt.get());
          for (auto& branch : node->branches) {
            resolve_expr(branch.test.get(), true);
            resolve_body(branch.body, true);
          }
          resolve_body(node->otherwise, true);
          break;
        }
        case StmtKind::For: {
          auto* node = static_cast<ForStmt*>(stmt.get());
          resolve_expr(node->iterable.get(), soft);
          resolve_expr(node->filter.get(), false);
          resolve_body(node->body, false);
          resolve_body(node->otherwise, false);
          break;
        }
        case StmtKind::Set: resolve_expr(static_cast<SetStmt*>(stmt.get())->value.get(), soft); break;
        case StmtKind::SetBlock: {
          auto* node = static_cast<SetBlockStmt*>(stmt.get());
          for (auto& filter : node->filters) resolve_filter(*filter, false);
          resolve_body(node->body, false);
          break;
        }
        case StmtKind::Macro: resolve_macro(static_cast<MacroStmt*>(stmt.get())->macro); break;
        case StmtKind::CallBlock: {
          auto* node = static_cast<CallBlockStmt*>(stmt.get());
          resolve_expr(node->call.get(), soft);
          resolve_macro(node->caller);
          break;
        }
        case StmtKind::FilterBlock: {
          auto* node = static_cast<FilterBlockStmt*>(stmt.get());
          for (auto& filter : node->filters) resolve_filter(*filter, false);
          resolve_body(node->body, false);
          break;
        }
        case StmtKind::With: {
          auto* node = static_cast<WithStmt*>(stmt.get());
          for (auto& [target, value] : node->assignments) resolve_expr(value.get(), soft);
          resolve_body(node->body, false);
          break;
        }
        case StmtKind::Group: resolve_body(static_cast<GroupStmt*>(stmt.get())->body, soft); break;
      }
    }
  }

  std::vector<Token> tokens_;
  size_t index_ = 0;
  int depth_ = 0;
  int loop_depth_ = 0;
  std::vector<Names> end_token_stack_;
  std::vector<std::string> tag_stack_;
  std::vector<MacroDefinition*> macro_stack_;
};

}  // namespace

Body parse(std::vector<Token> tokens) { return Parser(std::move(tokens)).parse_template(); }

}  // namespace rackserve::jinja
