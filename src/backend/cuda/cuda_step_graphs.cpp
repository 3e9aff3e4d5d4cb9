// CudaBackend step graphs: stream capture into a CUDA graph, instantiated once, launched
// per replay. The arena marks make replay safe: a graph's kernels read and write the step
// tensors allocated while it was captured, so replay demands the arena be where capture
// started (same inputs uploaded after begin_step) and moves it to where capture ended.
#include <cuda_runtime.h>

#include <cstring>
#include <optional>
#include <vector>

#include "backend/cuda/cuda_backend.h"
#include <spdlog/spdlog.h>

#include "core/error.h"

namespace rackserve {

namespace {

// Whether `node` is a kernel of rackserve's (its mangled name is in namespace rackserve):
// every one of them calls wait_for_prior_kernel before touching memory an earlier kernel
// writes, so it may be launched programmatically. Library kernels (NCCL) are not.
bool is_rackserve_kernel(cudaGraphNode_t node) {
  cudaGraphNodeType type;
  if (cudaGraphNodeGetType(node, &type) != cudaSuccess || type != cudaGraphNodeTypeKernel) return false;
  cudaKernelNodeParams params{};
  const char* name = nullptr;
  if (cudaGraphKernelNodeGetParams(node, &params) != cudaSuccess ||
      cudaFuncGetName(&name, params.func) != cudaSuccess || !name)
    return false;
  return std::strstr(name, "rackserve") != nullptr;
}

bool is_kernel(cudaGraphNode_t node) {
  cudaGraphNodeType type;
  return cudaGraphNodeGetType(node, &type) == cudaSuccess && type == cudaGraphNodeTypeKernel;
}

// Turns every full-completion edge from a kernel to a rackserve kernel into a programmatic
// dependency (the edge a launch with programmatic stream serialization makes): the downstream
// kernel may start as the upstream one's blocks finish, and waits in wait_for_prior_kernel
// for its completion and memory. Returns the edges changed, or nullopt after a CUDA error
// (cleared), when the graph may have lost an edge half-way and must not be used.
std::optional<int64_t> overlap_kernel_edges(cudaGraph_t graph) {
  size_t count = 0;
  if (cudaGraphGetEdges(graph, nullptr, nullptr, nullptr, &count) != cudaSuccess) {
    cudaGetLastError();
    return std::nullopt;
  }
  std::vector<cudaGraphNode_t> from(count), to(count);
  std::vector<cudaGraphEdgeData> data(count);
  if (count > 0 && cudaGraphGetEdges(graph, from.data(), to.data(), data.data(), &count) != cudaSuccess) {
    cudaGetLastError();
    return std::nullopt;
  }
  int64_t changed = 0;
  for (size_t i = 0; i < count; ++i) {
    if (data[i].type != cudaGraphDependencyTypeDefault || data[i].from_port != 0) continue;
    if (!is_kernel(from[i]) || !is_rackserve_kernel(to[i])) continue;
    cudaGraphEdgeData programmatic{};
    programmatic.from_port = cudaGraphKernelNodePortProgrammatic;
    programmatic.type = cudaGraphDependencyTypeProgrammatic;
    if (cudaGraphRemoveDependencies(graph, &from[i], &to[i], &data[i], 1) != cudaSuccess ||
        cudaGraphAddDependencies(graph, &from[i], &to[i], &programmatic, 1) != cudaSuccess) {
      cudaGetLastError();
      return std::nullopt;
    }
    ++changed;
  }
  return changed;
}

// The captured graph with its kernel edges made programmatic, instantiated; null when the
// rewrite or the instantiation fails (the caller then instantiates the graph as captured).
cudaGraphExec_t instantiate_overlapped(cudaGraph_t captured, int64_t& overlapped_edges) {
  cudaGraph_t copy = nullptr;
  if (cudaGraphClone(&copy, captured) != cudaSuccess) {
    cudaGetLastError();
    return nullptr;
  }
  cudaGraphExec_t exec = nullptr;
  const std::optional<int64_t> changed = overlap_kernel_edges(copy);
  if (changed && cudaGraphInstantiate(&exec, copy, 0) == cudaSuccess) {
    overlapped_edges = *changed;
  } else {
    exec = nullptr;
    cudaGetLastError();
  }
  cudaGraphDestroy(copy);
  return exec;
}

}  // namespace

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
  cudaGraphExec_t exec = options_.overlap_launches ? instantiate_overlapped(captured, graph.overlapped_edges) : nullptr;
  if (options_.overlap_launches && !exec)
    spdlog::warn("CUDA refused the step graph's programmatic edges; this graph runs without overlapped launches");
  const bool from_copy = exec != nullptr;
  const cudaError_t instantiated = from_copy ? cudaSuccess : cudaGraphInstantiate(&exec, captured, 0);
  if (from_copy)
    graph.captured = captured;
  else
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
  StepGraph& graph = graphs_[id];
  if (graph.exec) cudaGraphExecDestroy(static_cast<cudaGraphExec_t>(graph.exec));
  if (graph.captured) cudaGraphDestroy(static_cast<cudaGraph_t>(graph.captured));
  graph.exec = nullptr;
  graph.captured = nullptr;
}

}  // namespace rackserve
