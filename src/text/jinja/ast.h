// Syntax tree of a parsed template. Expressions and statements are small structs tagged by
// kind; the evaluator switches on the kind. Every node keeps the byte offset of the token
// it starts at, for error locations. A tree is immutable once parsed and may be rendered
// from several threads at once.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "text/jinja/builtins.h"
#include "text/jinja/value.h"

namespace rackserve::jinja {

struct Expr;
struct Stmt;
using ExprPtr = std::unique_ptr<Expr>;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

enum class ExprKind : uint8_t {
  Literal,    // constant value
  Name,       // variable lookup
  List,       // [a, b]
  Tuple,      // (a, b) or a, b
  Dict,       // {k: v}
  GetAttr,    // x.name
  GetItem,    // x[key]
  Slice,      // start:stop:step inside []
  Unary,      // not x, -x, +x
  Binary,     // arithmetic and ~
  And,
  Or,
  Compare,    // chained ==, !=, <, <=, >, >=, in, not in
  Condition,  // a if cond else b
  Call,       // f(args)
  Filter,     // x | name(args)
  Test,       // x is name(args)
};

enum class UnaryOp : uint8_t { Not, Negate, Plus };
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, FloorDiv, Mod, Pow, Concat };
enum class CompareOp : uint8_t { Eq, Ne, Lt, Le, Gt, Ge, In, NotIn };

struct Expr {
  Expr(ExprKind kind, uint32_t offset) : kind(kind), offset(offset) {}
  virtual ~Expr() = default;
  ExprKind kind;
  uint32_t offset;
};

struct Arguments {
  std::vector<ExprPtr> positional;
  std::vector<std::pair<std::string, ExprPtr>> keyword;
  ExprPtr star_args;    // *args, may be null
  ExprPtr star_kwargs;  // **kwargs, may be null
};

struct LiteralExpr : Expr {
  LiteralExpr(uint32_t offset, Value value) : Expr(ExprKind::Literal, offset), value(std::move(value)) {}
  Value value;
};

struct NameExpr : Expr {
  NameExpr(uint32_t offset, std::string name) : Expr(ExprKind::Name, offset), name(std::move(name)) {}
  std::string name;
};

// List and Tuple literals.
struct SequenceExpr : Expr {
  SequenceExpr(ExprKind kind, uint32_t offset) : Expr(kind, offset) {}
  std::vector<ExprPtr> items;
};

struct DictExpr : Expr {
  explicit DictExpr(uint32_t offset) : Expr(ExprKind::Dict, offset) {}
  std::vector<std::pair<ExprPtr, ExprPtr>> items;
};

struct GetAttrExpr : Expr {
  GetAttrExpr(uint32_t offset, ExprPtr object, std::string name)
      : Expr(ExprKind::GetAttr, offset), object(std::move(object)), name(std::move(name)) {}
  ExprPtr object;
  std::string name;
};

struct GetItemExpr : Expr {
  GetItemExpr(uint32_t offset, ExprPtr object, ExprPtr key)
      : Expr(ExprKind::GetItem, offset), object(std::move(object)), key(std::move(key)) {}
  ExprPtr object;
  ExprPtr key;  // a SliceExpr for x[a:b:c]
};

struct SliceExpr : Expr {
  explicit SliceExpr(uint32_t offset) : Expr(ExprKind::Slice, offset) {}
  ExprPtr start, stop, step;  // each may be null
};

struct UnaryExpr : Expr {
  UnaryExpr(uint32_t offset, UnaryOp op, ExprPtr operand)
      : Expr(ExprKind::Unary, offset), op(op), operand(std::move(operand)) {}
  UnaryOp op;
  ExprPtr operand;
};

// Binary, And and Or.
struct BinaryExpr : Expr {
  BinaryExpr(ExprKind kind, uint32_t offset, BinaryOp op, ExprPtr left, ExprPtr right)
      : Expr(kind, offset), op(op), left(std::move(left)), right(std::move(right)) {}
  BinaryOp op;  // meaningful for ExprKind::Binary only
  ExprPtr left, right;
};

struct CompareExpr : Expr {
  CompareExpr(uint32_t offset, ExprPtr first) : Expr(ExprKind::Compare, offset), first(std::move(first)) {}
  struct Operand {
    CompareOp op;
    ExprPtr expr;
    uint32_t offset;
  };
  ExprPtr first;
  std::vector<Operand> rest;
};

struct ConditionExpr : Expr {
  explicit ConditionExpr(uint32_t offset) : Expr(ExprKind::Condition, offset) {}
  ExprPtr test, then, otherwise;  // otherwise may be null (undefined when false)
};

struct CallExpr : Expr {
  CallExpr(uint32_t offset, ExprPtr callee) : Expr(ExprKind::Call, offset), callee(std::move(callee)) {}
  ExprPtr callee;
  Arguments args;
};

// Filters and tests resolve their function when parsed; an unknown name inside an `if`
// (jinja2's "soft frame") is only an error if evaluated.
struct FilterExpr : Expr {
  FilterExpr(ExprKind kind, uint32_t offset, ExprPtr operand, std::string name)
      : Expr(kind, offset), operand(std::move(operand)), name(std::move(name)) {}
  ExprPtr operand;  // null in a filter block / block set, where the body is the operand
  std::string name;
  Arguments args;
  // Resolved after parsing (see builtins.h); both null when the name is unknown.
  FilterFunction filter = nullptr;
  TestFunction test = nullptr;
};

// Assignment targets of for, set and with.
struct Target {
  enum class Kind : uint8_t { Name, Tuple, NamespaceAttribute };
  Kind kind = Kind::Name;
  uint32_t offset = 0;
  std::string name;  // Name, or the namespace variable
  std::string attribute;
  std::vector<Target> items;  // Tuple
};

enum class StmtKind : uint8_t {
  Text,
  Output,
  If,
  For,
  Set,
  SetBlock,
  Macro,
  CallBlock,
  FilterBlock,
  With,
  Group,  // statements without a scope of their own ({% generation %})
  Break,
  Continue,
};

struct Stmt {
  Stmt(StmtKind kind, uint32_t offset) : kind(kind), offset(offset) {}
  virtual ~Stmt() = default;
  StmtKind kind;
  uint32_t offset;
};

struct TextStmt : Stmt {
  TextStmt(uint32_t offset, std::string text) : Stmt(StmtKind::Text, offset), text(std::move(text)) {}
  std::string text;
};

struct OutputStmt : Stmt {
  OutputStmt(uint32_t offset, ExprPtr expr) : Stmt(StmtKind::Output, offset), expr(std::move(expr)) {}
  ExprPtr expr;
};

struct IfStmt : Stmt {
  explicit IfStmt(uint32_t offset) : Stmt(StmtKind::If, offset) {}
  struct Branch {
    ExprPtr test;
    Body body;
  };
  std::vector<Branch> branches;  // if, then each elif
  Body otherwise;
};

struct ForStmt : Stmt {
  explicit ForStmt(uint32_t offset) : Stmt(StmtKind::For, offset) {}
  Target target;
  ExprPtr iterable;
  ExprPtr filter;  // `for x in xs if cond`, may be null
  Body body;
  Body otherwise;  // {% else %}: runs when no item passed the filter
};

struct SetStmt : Stmt {
  explicit SetStmt(uint32_t offset) : Stmt(StmtKind::Set, offset) {}
  Target target;
  ExprPtr value;
};

// Filter chain applied to a rendered body; each filter's operand is the previous result.
using FilterChain = std::vector<std::unique_ptr<FilterExpr>>;

struct SetBlockStmt : Stmt {
  explicit SetBlockStmt(uint32_t offset) : Stmt(StmtKind::SetBlock, offset) {}
  Target target;
  FilterChain filters;
  Body body;
};

struct Parameter {
  std::string name;
  ExprPtr default_value;  // may be null
};

// Shared by macros and the caller of call blocks.
struct MacroDefinition {
  std::string name;
  std::vector<Parameter> parameters;
  Body body;
  bool uses_caller = false;
  bool uses_varargs = false;
  bool uses_kwargs = false;
};

struct MacroStmt : Stmt {
  explicit MacroStmt(uint32_t offset) : Stmt(StmtKind::Macro, offset) {}
  MacroDefinition macro;
};

struct CallBlockStmt : Stmt {
  explicit CallBlockStmt(uint32_t offset) : Stmt(StmtKind::CallBlock, offset) {}
  std::unique_ptr<CallExpr> call;
  MacroDefinition caller;  // named "caller"
};

struct FilterBlockStmt : Stmt {
  explicit FilterBlockStmt(uint32_t offset) : Stmt(StmtKind::FilterBlock, offset) {}
  FilterChain filters;
  Body body;
};

struct WithStmt : Stmt {
  explicit WithStmt(uint32_t offset) : Stmt(StmtKind::With, offset) {}
  std::vector<std::pair<Target, ExprPtr>> assignments;
  Body body;
};

struct GroupStmt : Stmt {
  explicit GroupStmt(uint32_t offset) : Stmt(StmtKind::Group, offset) {}
  Body body;
};

}  // namespace rackserve::jinja
