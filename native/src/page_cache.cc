// dropFromPageCache(fd, offset, length, callback(errno)): writes bytes [offset, offset + length)
// of open file `fd` back to disk and drops them from the page cache, on a thread of Node's pool;
// the callback gets 0, or the errno that stopped it.
//
// Why: a file streamed into a multipart upload is staged on local disk as it is written
// (fs/write/streaming-upload.ts), and the staged bytes whose part the store already has are only
// kept for a rewrite or a failure. Left in the page cache they grow with the file (1 GiB of dirty
// pages for a 1 GiB file), and every new page is fresh memory, which costs more than the copy
// into it on the project's VM (bench/RESULTS.md, Write path). Written back and dropped, the
// stream's pages are used again part after part, and the bytes stay on disk for whoever needs them.
//
// sync_file_range waits for the range's writeback (pages still being written are not dropped
// otherwise); it makes nothing durable (no metadata, no disk cache flush), which is not asked
// for here. The caller must keep `fd` open until the callback: a descriptor closed and reused
// meanwhile would only get another file's clean pages dropped, never its data changed.
#include "page_cache.h"

#include <errno.h>
#include <fcntl.h>

#include "callback.h"

namespace objmount {
namespace {

struct Drop {
  int fd;
  off_t offset;
  off_t length;
  int result = 0;
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;
};

}  // namespace

napi_value DropFromPageCache(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4] = {};
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double fd = -1, offset = -1, length = -1;
  napi_valuetype type;
  napi_typeof(env, argv[3], &type);
  if (napi_get_value_double(env, argv[0], &fd) != napi_ok || napi_get_value_double(env, argv[1], &offset) != napi_ok ||
      napi_get_value_double(env, argv[2], &length) != napi_ok || !(fd >= 0 && fd <= 2147483647.0) || !(offset >= 0) ||
      !(length > 0) || type != napi_function) {
    napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", "dropFromPageCache(fd, offset, length, callback): an open descriptor, a range and a function");
    return nullptr;
  }
  auto* job = new Drop{static_cast<int>(fd), static_cast<off_t>(offset), static_cast<off_t>(length)};
  napi_create_reference(env, argv[3], 1, &job->callback);
  napi_value name;
  napi_create_string_utf8(env, "objmount-drop-from-page-cache", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(
      env, nullptr, name,
      [](napi_env, void* data) {
        auto* job = static_cast<Drop*>(data);
        unsigned flags = SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE | SYNC_FILE_RANGE_WAIT_AFTER;
        if (sync_file_range(job->fd, job->offset, job->length, flags) != 0) {
          job->result = errno;
          return;
        }
        job->result = posix_fadvise(job->fd, job->offset, job->length, POSIX_FADV_DONTNEED);  // returns the errno
      },
      [](napi_env env, napi_status, void* data) {
        auto* job = static_cast<Drop*>(data);
        napi_ref callback = job->callback;
        napi_value arg;
        napi_create_int32(env, job->result, &arg);
        napi_delete_async_work(env, job->work);
        delete job;
        CallOnce(env, callback, arg);
      },
      job, &job->work);
  napi_queue_async_work(env, job->work);
  return nullptr;
}

}  // namespace objmount
