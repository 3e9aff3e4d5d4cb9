// API key check (constant-time compare, Bearer parsing, x-api-key) and the Prometheus exposition.
#include <gtest/gtest.h>

#include "api/auth.h"
#include "api/metrics.h"

namespace rackserve::api {
namespace {

TEST(ConstantTimeEquals, ComparesContentAndLength) {
  EXPECT_TRUE(constant_time_equals("", ""));
  EXPECT_TRUE(constant_time_equals("secret", "secret"));
  EXPECT_FALSE(constant_time_equals("secret", "secreT"));
  EXPECT_FALSE(constant_time_equals("secret", "secret2"));
  EXPECT_FALSE(constant_time_equals("secret", ""));
  EXPECT_FALSE(constant_time_equals(std::string_view("a\0b", 3), std::string_view("a", 1)));
}

TEST(ApiKeyCheck, AcceptsOnlyTheBearerKey) {
  ApiKeyCheck check("k3y");
  EXPECT_TRUE(check.allows("Bearer k3y"));
  EXPECT_TRUE(check.allows("bearer k3y"));
  EXPECT_TRUE(check.allows("Bearer   k3y "));
  EXPECT_FALSE(check.allows("Bearer k3"));
  EXPECT_FALSE(check.allows("Basic k3y"));
  EXPECT_FALSE(check.allows("k3y"));
  EXPECT_FALSE(check.allows(""));
  EXPECT_TRUE(ApiKeyCheck("").allows(""));
  EXPECT_FALSE(ApiKeyCheck("").enabled());
}

TEST(ApiKeyCheck, AcceptsTheKeyAsXApiKeyToo) {
  ApiKeyCheck check("k3y");
  EXPECT_TRUE(check.allows_x_api_key("k3y"));
  EXPECT_TRUE(check.allows_x_api_key(" k3y\t"));
  EXPECT_FALSE(check.allows_x_api_key("Bearer k3y"));
  EXPECT_FALSE(check.allows_x_api_key("k3"));
  EXPECT_FALSE(check.allows_x_api_key(""));
  EXPECT_TRUE(check.allows("", "k3y"));
  EXPECT_TRUE(check.allows("Bearer k3y", ""));
  EXPECT_TRUE(check.allows("Bearer wrong", "k3y"));
  EXPECT_FALSE(check.allows("Bearer wrong", "wrong"));
  EXPECT_FALSE(check.allows("", ""));
  EXPECT_TRUE(ApiKeyCheck("").allows("", ""));
}

TEST(PrometheusMetrics, ExposesGaugesAndCountersWithHelpAndType) {
  EngineStats stats;
  stats.running_requests = 3;
  stats.waiting_requests = 2;
  stats.kv_pages_total = 100;
  stats.kv_pages_used = 25;
  stats.requests_aborted = 16;
  std::string text = format_prometheus_metrics(stats, "tiny\"model");
  EXPECT_NE(text.find("# TYPE rackserve_kv_pages_used gauge\nrackserve_kv_pages_used{model_name=\"tiny\\\"model\"} 25\n"),
            std::string::npos)
      << text;
  EXPECT_NE(text.find("rackserve_requests_running{model_name=\"tiny\\\"model\"} 3\n"), std::string::npos);
  EXPECT_NE(text.find("rackserve_requests_waiting{model_name=\"tiny\\\"model\"} 2\n"), std::string::npos);
  EXPECT_NE(text.find("# TYPE rackserve_requests_aborted_total counter\n"), std::string::npos);
  EXPECT_NE(text.find("rackserve_kv_cache_usage_ratio{model_name=\"tiny\\\"model\"} 0.25\n"), std::string::npos);
}

}  // namespace
}  // namespace rackserve::api
