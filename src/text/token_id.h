// Token ids as the model sees them.
#pragma once

#include <cstdint>

namespace rackserve::text {

using TokenId = uint32_t;

}  // namespace rackserve::text
