// The advice rules of `rackserve doctor` on synthetic topologies: each rule fires on the
// situation it names and stays quiet otherwise; settings the user made are never overridden.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>

#include "parallel/nccl_advice.h"

namespace rackserve::parallel {
namespace {

GpuTopology pcie_box(int count, double bandwidth, int numa_split = -1) {
  GpuTopology topology;
  for (int i = 0; i < count; ++i) {
    GpuInfo gpu;
    gpu.index = i;
    gpu.name = "NVIDIA RTX PRO 6000 Blackwell Server Edition";
    gpu.pci_bus_id = "0000:0" + std::to_string(i) + ":00.0";
    gpu.link_width = gpu.max_link_width = 16;
    gpu.link_speed = gpu.max_link_speed = "32.0 GT/s PCIe";
    gpu.numa_node = numa_split >= 0 && i >= numa_split ? 1 : 0;
    topology.gpus.push_back(gpu);
  }
  topology.peers.assign(count, std::vector<PeerLink>(count));
  for (int i = 0; i < count; ++i)
    for (int j = 0; j < count; ++j)
      if (i != j) {
        topology.peers[i][j].can_access = true;
        topology.peers[i][j].bandwidth_gb_per_s = bandwidth;
        topology.peers[i][j].latency_us = 2.0;
      }
  return topology;
}

const Advice::Setting* find(const Advice& advice, const std::string& name) {
  auto it = std::find_if(advice.settings.begin(), advice.settings.end(),
                         [&](const Advice::Setting& s) { return s.name == name; });
  return it == advice.settings.end() ? nullptr : &*it;
}

bool any_warning_contains(const Advice& advice, const std::string& text) {
  return std::any_of(advice.warnings.begin(), advice.warnings.end(),
                     [&](const std::string& w) { return w.find(text) != std::string::npos; });
}

TEST(NcclAdvice, WorkingPciePeersGetP2pLevelSysAndNoInfiniband) {
  const Advice advice = advise(pcie_box(4, 50.0));
  ASSERT_NE(find(advice, "NCCL_P2P_LEVEL"), nullptr);
  EXPECT_EQ(find(advice, "NCCL_P2P_LEVEL")->value, "SYS");
  EXPECT_EQ(find(advice, "NCCL_IB_DISABLE")->value, "1");
  EXPECT_EQ(find(advice, "NCCL_P2P_DISABLE"), nullptr);
  EXPECT_TRUE(advice.warnings.empty());
}

TEST(NcclAdvice, NvlinkClassPeersNeedNoP2pLevel) {
  const Advice advice = advise(pcie_box(2, 400.0));
  EXPECT_EQ(find(advice, "NCCL_P2P_LEVEL"), nullptr);
  EXPECT_EQ(find(advice, "NCCL_NVLS_ENABLE"), nullptr);
}

TEST(NcclAdvice, HungPeerCopyDisablesP2p) {
  GpuTopology topology = pcie_box(2, 50.0);
  topology.peers[0][1].bandwidth_gb_per_s.reset();
  topology.peers[0][1].error = "a 32 MiB copy did not finish within 10 s (hung)";
  const Advice advice = advise(topology);
  ASSERT_NE(find(advice, "NCCL_P2P_DISABLE"), nullptr);
  EXPECT_EQ(find(advice, "NCCL_P2P_LEVEL"), nullptr);
  EXPECT_TRUE(any_warning_contains(advice, "hung"));
}

TEST(NcclAdvice, CrossNumaNarrowLinksMixedModelsAndTooLargeTpWarn) {
  GpuTopology topology = pcie_box(4, 50.0, 2);
  topology.gpus[3].link_width = 8;
  topology.gpus[1].name = "NVIDIA GeForce RTX 5090";
  const Advice advice = advise(topology, 8);
  EXPECT_TRUE(any_warning_contains(advice, "NUMA"));
  EXPECT_TRUE(any_warning_contains(advice, "x8 of x16"));
  EXPECT_TRUE(any_warning_contains(advice, "not all the same model"));
  EXPECT_TRUE(any_warning_contains(advice, "--tp 8"));
  // A group inside one NUMA node of uniform cards is clean.
  GpuTopology clean = pcie_box(4, 50.0, 2);
  EXPECT_FALSE(any_warning_contains(advise(clean, 2), "NUMA"));
}

TEST(NcclAdvice, NoPeerAccessIsANoteNotAP2pLevel) {
  GpuTopology topology = pcie_box(2, 50.0);
  topology.peers[0][1] = PeerLink{};
  topology.peers[1][0] = PeerLink{};
  const Advice advice = advise(topology);
  EXPECT_EQ(find(advice, "NCCL_P2P_LEVEL"), nullptr);
  EXPECT_FALSE(advice.notes.empty());
}

TEST(NcclAdvice, UserSettingsWin) {
  GpuTopology topology = pcie_box(2, 50.0);
  topology.environment["NCCL_P2P_LEVEL"] = "PXB";
  const Advice advice = advise(topology);
  EXPECT_EQ(find(advice, "NCCL_P2P_LEVEL"), nullptr);
  EXPECT_TRUE(std::any_of(advice.notes.begin(), advice.notes.end(),
                          [](const std::string& n) { return n.find("NCCL_P2P_LEVEL=PXB is set by you") == 0; }));
}

TEST(NcclAdvice, ApplySetsOnlyUnsetVariables) {
  ::setenv("RACKSERVE_TEST_ADVICE_SET", "mine", 1);
  ::unsetenv("RACKSERVE_TEST_ADVICE_UNSET");
  Advice advice;
  advice.settings = {{"RACKSERVE_TEST_ADVICE_SET", "theirs", ""}, {"RACKSERVE_TEST_ADVICE_UNSET", "v", ""}};
  const auto applied = apply_advice(advice);
  ASSERT_EQ(applied.size(), 1u);
  EXPECT_EQ(applied[0].name, "RACKSERVE_TEST_ADVICE_UNSET");
  EXPECT_STREQ(std::getenv("RACKSERVE_TEST_ADVICE_SET"), "mine");
  EXPECT_STREQ(std::getenv("RACKSERVE_TEST_ADVICE_UNSET"), "v");
}

TEST(NcclAdvice, NoGpusSaysSo) {
  EXPECT_TRUE(any_warning_contains(advise(GpuTopology{}), "no CUDA GPU"));
}

}  // namespace
}  // namespace rackserve::parallel
