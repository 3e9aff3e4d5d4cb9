// CudaBackend step graphs: stream capture into a CUDA graph, instantiated once, launched
// per replay. The arena marks make replay safe: a graph's kernels read and write the step
// tensors allocated while it was captured, so replay demands the arena be where capture
// started (same inputs uploaded after begin_step) and moves it to where capture ended.
#include <cuda_runtime.h>

#include <vector>

#include "backend/cuda/cuda_backend.h"
#include "core/error.h"

namespace rackserve {

int64_t CudaBackend::capture_step_graph(const std::function<void()>& record) {
  cudaStream_t stream = static_cast<cudaStream_t>(stream_);
  StepGraph graph;
  graph.start = {chunk_index_, chunk_offset_};
  // Relaxed: a step allocation that needs a new arena chunk calls cudaMalloc mid-capture.
  check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeRelaxed), "cudaStreamBeginCapture");
  cudaGraph_t captured = nullptr;
  try {
    record();
  } catch (...) {
    cudaStreamEndCapture(stream, &captured);
    if (captured) cudaGraphDestroy(captured);
    cudaGetLastError();  // the capture's failure is reported by the exception
    throw;
  }
  check(cudaStreamEndCapture(stream, &captured), "cudaStreamEndCapture");
  size_t nodes = 0;
  if (cudaGraphGetNodes(captured, nullptr, &nodes) == cudaSuccess) {
    std::vector<cudaGraphNode_t> all(nodes);
    if (nodes > 0 && cudaGraphGetNodes(captured, all.data(), &nodes) == cudaSuccess)
      for (cudaGraphNode_t node : all) {
        cudaGraphNodeType type;
        if (cudaGraphNodeGetType(node, &type) == cudaSuccess && type == cudaGraphNodeTypeKernel) ++graph.kernels;
      }
  }
  cudaGetLastError();  // counting is best effort
  cudaGraphExec_t exec = nullptr;
  const cudaError_t instantiated = cudaGraphInstantiate(&exec, captured, 0);
  cudaGraphDestroy(captured);
  check(instantiated, "cudaGraphInstantiate");
  graph.exec = exec;
  graph.end = {chunk_index_, chunk_offset_};
  // Nothing ran: the arena is back where the capture began, ready for the first replay.
  chunk_index_ = graph.start.chunk;
  chunk_offset_ = graph.start.offset;
  graphs_.push_back(graph);
  return static_cast<int64_t>(graphs_.size()) - 1;
}

void CudaBackend::replay_step_graph(int64_t id) {
  RS_CHECK(id >= 0 && id < static_cast<int64_t>(graphs_.size()) && graphs_[id].exec, "step graph {} does not exist",
           id);
  const StepGraph& graph = graphs_[id];
  RS_CHECK(graph.start == (ArenaMark{chunk_index_, chunk_offset_}),
           "step graph {} was captured at arena position {}:{}, replayed at {}:{} (inputs differ from the capture's)",
           id, graph.start.chunk, graph.start.offset, chunk_index_, chunk_offset_);
  check(cudaGraphLaunch(static_cast<cudaGraphExec_t>(graph.exec), static_cast<cudaStream_t>(stream_)),
        "cudaGraphLaunch");
  chunk_index_ = graph.end.chunk;
  chunk_offset_ = graph.end.offset;
}

void CudaBackend::release_step_graph(int64_t id) {
  RS_CHECK(id >= 0 && id < static_cast<int64_t>(graphs_.size()), "step graph {} does not exist", id);
  if (graphs_[id].exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graphs_[id].exec));
  graphs_[id].exec = nullptr;
}

}  // namespace rackserve
