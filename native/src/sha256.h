// SHA-256 of a Buffer off the JS thread (see sha256.cc).
#pragma once

#include <node_api.h>

namespace objmount {

napi_value Sha256(napi_env env, napi_callback_info info);

}  // namespace objmount
