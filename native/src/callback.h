// Answering JS from the end of a job on Node's thread pool (the completion, back on the JS thread).
#pragma once

#include <node_api.h>

namespace objmount {

// Calls the function `callback` references with `arg` (and `this` the global object), once: the
// reference is deleted first. Call it last, once the job's own memory is freed: the function may
// start the next job.
inline void CallOnce(napi_env env, napi_ref callback, napi_value arg) {
  napi_value fn, global;
  napi_get_reference_value(env, callback, &fn);
  napi_get_global(env, &global);
  napi_delete_reference(env, callback);
  napi_call_function(env, global, fn, 1, &arg, nullptr);
}

}  // namespace objmount
