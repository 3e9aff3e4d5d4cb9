// peer_closed() against real loopback TCP connections (IPv4 and IPv6): open reads as
// open; after the client closes, the server side reads as closed; unknown connections and
// malformed addresses read as not closed (never a false alarm).
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <chrono>
#include <string>
#include <thread>

#include <gtest/gtest.h>

#include "api/client_connection.h"

namespace rackserve::api {
namespace {

// A connected pair over loopback: the accepted (server) side and the client side, plus
// the endpoints as the server sees them (what httplib puts in the Request).
struct Connection {
  int server = -1, client = -1;
  TcpEndpoints endpoints;
};

std::string address_text(const sockaddr_storage& address) {
  char text[INET6_ADDRSTRLEN] = {};
  if (address.ss_family == AF_INET)
    inet_ntop(AF_INET, &reinterpret_cast<const sockaddr_in&>(address).sin_addr, text, sizeof text);
  else
    inet_ntop(AF_INET6, &reinterpret_cast<const sockaddr_in6&>(address).sin6_addr, text, sizeof text);
  return text;
}

int port_of(const sockaddr_storage& address) {
  return ntohs(address.ss_family == AF_INET ? reinterpret_cast<const sockaddr_in&>(address).sin_port
                                            : reinterpret_cast<const sockaddr_in6&>(address).sin6_port);
}

Connection connect_loopback(int family) {
  Connection connection;
  int listener = socket(family, SOCK_STREAM, 0);
  sockaddr_storage bound{};
  socklen_t length;
  if (family == AF_INET) {
    auto& v4 = reinterpret_cast<sockaddr_in&>(bound);
    v4.sin_family = AF_INET;
    v4.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    length = sizeof(sockaddr_in);
  } else {
    auto& v6 = reinterpret_cast<sockaddr_in6&>(bound);
    v6.sin6_family = AF_INET6;
    v6.sin6_addr = in6addr_loopback;
    length = sizeof(sockaddr_in6);
  }
  if (bind(listener, reinterpret_cast<sockaddr*>(&bound), length) != 0 || listen(listener, 1) != 0) {
    close(listener);
    return connection;
  }
  getsockname(listener, reinterpret_cast<sockaddr*>(&bound), &length);
  connection.client = socket(family, SOCK_STREAM, 0);
  EXPECT_EQ(connect(connection.client, reinterpret_cast<sockaddr*>(&bound), length), 0);
  connection.server = accept(listener, nullptr, nullptr);
  close(listener);
  sockaddr_storage local{}, remote{};
  socklen_t local_length = sizeof local, remote_length = sizeof remote;
  getsockname(connection.server, reinterpret_cast<sockaddr*>(&local), &local_length);
  getpeername(connection.server, reinterpret_cast<sockaddr*>(&remote), &remote_length);
  connection.endpoints = {address_text(local), port_of(local), address_text(remote), port_of(remote)};
  return connection;
}

bool closed_within(const TcpEndpoints& endpoints, std::chrono::milliseconds limit) {
  const auto start = std::chrono::steady_clock::now();
  while (std::chrono::steady_clock::now() - start < limit) {
    if (peer_closed(endpoints)) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  return false;
}

void check_family(int family) {
  Connection connection = connect_loopback(family);
  // IPv4 loopback exists everywhere; some containers have no IPv6 at all (said, not hidden).
  if (connection.server < 0 && family == AF_INET6) GTEST_SKIP() << "this machine has no IPv6 loopback";
  ASSERT_GE(connection.server, 0) << "no loopback connection";
  EXPECT_FALSE(peer_closed(connection.endpoints)) << "open connection read as closed";
  close(connection.client);
  EXPECT_TRUE(closed_within(connection.endpoints, std::chrono::milliseconds(1000)))
      << connection.endpoints.remote_address << ":" << connection.endpoints.remote_port;
  close(connection.server);
}

TEST(ClientConnection, Ipv4OpenThenClosedByPeer) { check_family(AF_INET); }

TEST(ClientConnection, Ipv6OpenThenClosedByPeer) { check_family(AF_INET6); }

TEST(ClientConnection, UnknownOrMalformedIsNotClosed) {
  EXPECT_FALSE(peer_closed({"127.0.0.1", 1, "127.0.0.1", 2}));
  EXPECT_FALSE(peer_closed({"not an address", 80, "127.0.0.1", 5000}));
  EXPECT_FALSE(peer_closed({"127.0.0.1", 80, "::1", 5000}));
  EXPECT_FALSE(peer_closed({}));
}

}  // namespace
}  // namespace rackserve::api
