// Filters over sequences (jinja2's map, select, selectattr, sort, unique, join, ...). The
// lazy ones (map, select*, reject*, unique, items, reverse) return generators like jinja2,
// so `{{ xs|map('upper') }}` prints a generator and `|list` materializes it.
#pragma once

#include "text/jinja/value.h"

namespace rackserve::jinja::filters {

Value first(Renderer& renderer, const Value& operand, CallArgs& args);
Value last(Renderer& renderer, const Value& operand, CallArgs& args);
Value length(Renderer& renderer, const Value& operand, CallArgs& args);
Value list(Renderer& renderer, const Value& operand, CallArgs& args);
Value join(Renderer& renderer, const Value& operand, CallArgs& args);
Value map(Renderer& renderer, const Value& operand, CallArgs& args);
Value select(Renderer& renderer, const Value& operand, CallArgs& args);
Value reject(Renderer& renderer, const Value& operand, CallArgs& args);
Value selectattr(Renderer& renderer, const Value& operand, CallArgs& args);
Value rejectattr(Renderer& renderer, const Value& operand, CallArgs& args);
Value unique(Renderer& renderer, const Value& operand, CallArgs& args);
Value sort(Renderer& renderer, const Value& operand, CallArgs& args);
Value dictsort(Renderer& renderer, const Value& operand, CallArgs& args);
Value items(Renderer& renderer, const Value& operand, CallArgs& args);
Value reverse(Renderer& renderer, const Value& operand, CallArgs& args);
Value sum(Renderer& renderer, const Value& operand, CallArgs& args);
Value min(Renderer& renderer, const Value& operand, CallArgs& args);
Value max(Renderer& renderer, const Value& operand, CallArgs& args);
Value batch(Renderer& renderer, const Value& operand, CallArgs& args);

}  // namespace rackserve::jinja::filters
