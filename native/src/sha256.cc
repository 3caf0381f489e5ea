// sha256(buffer, callback(hex | null)): the SHA-256 of `buffer`, as lowercase hex, computed on a
// thread of Node's pool; null when OpenSSL fails. The caller must not change the buffer until the
// callback (it is read in place, not copied).
//
// Why: a request to S3 signed with Signature V4 carries the SHA-256 of its body. The SDK computes
// it on the JS thread (`node:crypto`'s hash is synchronous), ~8-15 ms per 8 MiB part here, and the
// JS thread is the one that answers FUSE: a streamed write waits for it part after part. WebCrypto's
// digest runs in the pool, but copies its input first, into fresh memory, which costs as much on
// the JS thread (bench/RESULTS.md, Write path). OpenSSL's own SHA-256 (with the CPU's SHA
// instructions) is the one Node uses: Node exports it to addons.
#include "sha256.h"

#include <openssl/evp.h>

#include <cstdint>

#include "callback.h"

namespace objmount {
namespace {

struct Hash {
  const unsigned char* data;
  size_t length;
  bool ok = false;
  unsigned char digest[EVP_MAX_MD_SIZE];
  unsigned int digestLength = 0;
  napi_ref buffer = nullptr;  // keeps the bytes alive while they are read
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;
};

}  // namespace

napi_value Sha256(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {};
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  bool isBuffer = false;
  napi_is_buffer(env, argv[0], &isBuffer);
  napi_valuetype type;
  napi_typeof(env, argv[1], &type);
  if (!isBuffer || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "sha256(buffer, callback): a Buffer and a function");
    return nullptr;
  }
  void* data = nullptr;
  size_t length = 0;
  napi_get_buffer_info(env, argv[0], &data, &length);
  auto* job = new Hash{static_cast<const unsigned char*>(data), length};
  napi_create_reference(env, argv[0], 1, &job->buffer);
  napi_create_reference(env, argv[1], 1, &job->callback);
  napi_value name;
  napi_create_string_utf8(env, "objmount-sha256", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(
      env, nullptr, name,
      [](napi_env, void* data) {
        auto* job = static_cast<Hash*>(data);
        job->ok = EVP_Digest(job->data, job->length, job->digest, &job->digestLength, EVP_sha256(), nullptr) == 1;
      },
      [](napi_env env, napi_status, void* data) {
        auto* job = static_cast<Hash*>(data);
        static const char kHex[] = "0123456789abcdef";
        char hex[2 * EVP_MAX_MD_SIZE];
        for (unsigned int i = 0; i < job->digestLength; i++) {
          hex[2 * i] = kHex[job->digest[i] >> 4];
          hex[2 * i + 1] = kHex[job->digest[i] & 15];
        }
        napi_ref callback = job->callback;
        napi_value arg;
        if (job->ok) napi_create_string_latin1(env, hex, 2 * job->digestLength, &arg);
        else napi_get_null(env, &arg);
        napi_delete_reference(env, job->buffer);
        napi_delete_async_work(env, job->work);
        delete job;
        CallOnce(env, callback, arg);
      },
      job, &job->work);
  napi_queue_async_work(env, job->work);
  return nullptr;
}

}  // namespace objmount
