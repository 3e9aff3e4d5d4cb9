// Runs one generation request through the engine and answers it: as an SSE stream
// (chunked transfer, one event per engine output) or as one JSON body.
//
// Contract: the request is cancelled in the engine, freeing its KV pages within one
// step, as soon as the client is gone: a failed write on the stream, httplib releasing
// the response early, or (while waiting without writing) the kernel showing `client`'s
// connection closed by the peer. A full engine queue answers 503 with Retry-After at once.
#pragma once

#include <memory>

#include <httplib.h>

#include "api/api_context.h"
#include "api/client_connection.h"
#include "api/response_formatter.h"
#include "engine/request.h"

namespace rackserve::api {

void respond_with_generation(const ApiContext& context, Request request, std::unique_ptr<ResponseFormatter> formatter,
                             bool stream, const TcpEndpoints& client, httplib::Response& response);

}  // namespace rackserve::api
