// Writing a file's range back to disk and dropping it from the page cache (see page_cache.cc).
#pragma once

#include <node_api.h>

namespace objmount {

napi_value DropFromPageCache(napi_env env, napi_callback_info info);

}  // namespace objmount
