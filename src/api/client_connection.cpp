#include "api/client_connection.h"

#include <arpa/inet.h>

#include <array>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <optional>
#include <sstream>

namespace rackserve::api {
namespace {

// An address as /proc/net/tcp{,6} writes it: the raw bytes as 32-bit words, each printed
// as 8 hex digits in host (little-endian) order. IPv4 in tcp, IPv6 (and IPv4-mapped) in tcp6.
std::optional<std::string> proc_address(const std::string& text, bool& ipv6) {
  std::array<unsigned char, 16> bytes{};
  std::string address = text;
  if (inet_pton(AF_INET, address.c_str(), bytes.data()) == 1) {
    ipv6 = false;
  } else if (inet_pton(AF_INET6, address.c_str(), bytes.data()) == 1) {
    ipv6 = true;
  } else {
    return std::nullopt;
  }
  const int words = ipv6 ? 4 : 1;
  std::string out;
  for (int w = 0; w < words; ++w) {
    uint32_t word;
    std::memcpy(&word, bytes.data() + 4 * w, 4);  // network bytes reinterpreted in host order
    char hex[9];
    std::snprintf(hex, sizeof hex, "%08X", word);
    out += hex;
  }
  return out;
}

std::string proc_endpoint(const std::string& address, int port) {
  char hex[5];
  std::snprintf(hex, sizeof hex, "%04X", port & 0xFFFF);
  return address + ":" + hex;
}

}  // namespace

bool peer_closed(const TcpEndpoints& connection) {
  bool local_ipv6 = false, remote_ipv6 = false;
  auto local = proc_address(connection.local_address, local_ipv6);
  auto remote = proc_address(connection.remote_address, remote_ipv6);
  if (!local || !remote || local_ipv6 != remote_ipv6 || connection.local_port < 0 || connection.remote_port < 0)
    return false;
  const std::string local_endpoint = proc_endpoint(*local, connection.local_port);
  const std::string remote_endpoint = proc_endpoint(*remote, connection.remote_port);
  std::ifstream table(local_ipv6 ? "/proc/net/tcp6" : "/proc/net/tcp");
  std::string line;
  std::getline(table, line);  // header
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string slot, local_field, remote_field, state;
    if (!(fields >> slot >> local_field >> remote_field >> state)) continue;
    if (local_field != local_endpoint || remote_field != remote_endpoint) continue;
    // 07 CLOSE, 08 CLOSE_WAIT, 09 LAST_ACK, 0B CLOSING (include/net/tcp_states.h).
    return state == "07" || state == "08" || state == "09" || state == "0B";
  }
  return false;
}

}  // namespace rackserve::api
