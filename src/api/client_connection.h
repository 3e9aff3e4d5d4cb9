// Has the client of a TCP connection hung up? httplib 0.11 (Debian 12) gives handlers no
// socket, and a closed peer only shows on a failed write, so a handler that waits without
// writing (a non-streaming generation) asks the kernel instead: Linux lists every TCP
// connection with its state in /proc/net/tcp and /proc/net/tcp6, and a connection whose
// peer has sent FIN or reset is in CLOSE_WAIT (or later) or gone.
#pragma once

#include <string>

namespace rackserve::api {

struct TcpEndpoints {
  std::string local_address;  // as httplib reports it: "127.0.0.1", "::1", "::ffff:10.0.0.2"
  int local_port = -1;
  std::string remote_address;
  int remote_port = -1;
};

// True when the kernel shows the connection closed by the peer (CLOSE_WAIT, LAST_ACK,
// CLOSING or CLOSE). False when it is open, cannot be found, or /proc is unreadable
// (never a false alarm: the caller only cancels on true).
bool peer_closed(const TcpEndpoints& connection);

}  // namespace rackserve::api
