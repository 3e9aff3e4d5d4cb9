// Random walks over a token mask, for the constraint tests: from the constraint's state pick
// one of the tokens the mask allows, advance, and go on until EOS is picked or `max_steps`
// tokens went by. On the way (gtest failures) the mask must never allow nothing and the
// constraint must take every allowed token; `check_state(text, allowed)` sees each state
// before its pick (text: the bytes of the tokens so far).
#pragma once

#include <gtest/gtest.h>

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "engine/token_mask.h"

namespace rackserve::testing {

struct MaskWalk {
  std::string text;         // the picked tokens' bytes, EOS left out
  bool ended_on_eos = false;
};

template <class Constraint, class CheckState>
MaskWalk walk_mask(const JsonTokenMask& mask, Constraint& constraint, const std::vector<std::string>& vocabulary,
                   int32_t eos, std::mt19937& random, int max_steps, CheckState check_state) {
  MaskWalk walk;
  for (int step = 0; step < max_steps; ++step) {
    const std::vector<int32_t> allowed = mask.allowed(constraint.state());
    if (allowed.empty()) {
      ADD_FAILURE() << "dead end after " << walk.text;
      return walk;
    }
    check_state(walk.text, allowed);
    const int32_t token = allowed[random() % allowed.size()];
    if (!constraint.advance(token)) {
      ADD_FAILURE() << "the constraint refused allowed token " << token << " after " << walk.text;
      return walk;
    }
    if (token == eos) {
      walk.ended_on_eos = true;
      return walk;
    }
    walk.text += vocabulary[static_cast<size_t>(token)];
  }
  return walk;
}

template <class Constraint>
MaskWalk walk_mask(const JsonTokenMask& mask, Constraint& constraint, const std::vector<std::string>& vocabulary,
                   int32_t eos, std::mt19937& random, int max_steps) {
  return walk_mask(mask, constraint, vocabulary, eos, random, max_steps,
                   [](const std::string&, const std::vector<int32_t>&) {});
}

}  // namespace rackserve::testing
