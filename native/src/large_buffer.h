// Large Buffers backed by transparent huge pages (see large_buffer.cc).
#pragma once

#include <node_api.h>

namespace objmount {

napi_value AllocLargeBuffer(napi_env env, napi_callback_info info);

}  // namespace objmount
