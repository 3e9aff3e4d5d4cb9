// Nesting depth of a backend's ops, for wrappers (tracing, recording) that act on the model's
// own calls only and not on the ops a backend op calls in turn.
#pragma once

namespace rackserve::testing {

// Runs `op` with `depth` one higher for its duration (exceptions included); returns its result.
template <class Op>
auto run_nested(int &depth, const Op &op) -> decltype(op()) {
  struct Leave {
    int &depth;
    ~Leave() { --depth; }
  } leave{++depth};
  return op();
}

}  // namespace rackserve::testing
