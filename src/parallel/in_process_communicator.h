// The in-process communicator group: N ranks that are N threads of one process, their
// tensors in host memory (the CPU backend). It is the CPU oracle of the collectives:
// every rank sums the ranks' tensors itself, in rank order (((t0 + t1) + t2) + ...) in
// float32, so all ranks get bit-identical results that do not depend on timing.
#pragma once

#include <memory>
#include <vector>

#include "parallel/communicator.h"

namespace rackserve {

// world_size communicators sharing one group; element r is rank r's. Each may be used by
// one thread at a time (its rank's); abort() from any thread.
std::vector<std::unique_ptr<Communicator>> make_in_process_communicators(int world_size);

}  // namespace rackserve
