// One FUSE operation on its way from a FUSE thread to JavaScript and back.
//
// A FUSE thread fills in the inputs, queues the request on the session's threadsafe function and
// waits on `cv` until `done`. The JS thread calls the JS operation with a reply callback; the
// callback converts the JS answer straight into the FUSE thread's output buffers (stat, read
// buffer, ...) and sets `done`. Those buffers live on the FUSE thread's stack or in libfuse, so
// they may only be written while the FUSE thread still waits: every write happens under `mu`
// and only while `!done`. Stopping the session answers every pending request with an error
// (abort), after which a late JS reply is ignored.
//
// Lifetime: the FUSE thread holds one reference; the JS reply callback holds another until the
// callback function is garbage-collected, so a late or repeated call never touches freed memory.
#pragma once

#include <fuse.h>
#include <node_api.h>
#include <sys/statvfs.h>

#include <atomic>
#include <condition_variable>
#include <mutex>
#include <string>
#include <vector>

namespace objmount {

class Session;

enum class Op {
  Init, Statfs, Getattr, Fgetattr, Readdir, Opendir, Releasedir, Mkdir, Rmdir, Create, Open,
  Read, Write, Flush, Fsync, Fsyncdir, Release, Truncate, Ftruncate, Unlink, Rename, Symlink,
  Readlink, Link, Mknod, Chmod, Chown, Utimens, Setxattr, Getxattr, Listxattr, Removexattr,
  Access, Count
};

// The JS name of each operation, in Op order.
extern const char* const kOpNames[static_cast<int>(Op::Count)];

// What the FUSE side hands the JS thread: an operation, or news about the session.
struct Message {
  enum class Kind { Call, Mounted, Ended };
  explicit Message(Kind k) : kind(k) {}
  Kind kind;
};

// Mounted (with an error when the mount failed) or Ended.
struct Event : Message {
  Event(Kind k, std::string e = "") : Message(k), error(std::move(e)) {}
  std::string error;
};

struct Request : Message {
  Request(Session* s, Op o) : Message(Kind::Call), session(s), op(o) {}

  Session* session;
  Op op;

  // Inputs (which ones are set depends on `op`).
  std::string path;
  std::string path2;       // rename/link target, symlink path, xattr name
  uint64_t fh = 0;
  int64_t offset = 0;      // read/write position, truncate size
  size_t size = 0;         // read/write length, output buffer size (readlink, xattrs)
  int flags = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  dev_t dev = 0;
  bool datasync = false;
  const char* input = nullptr;  // write data, xattr value (copied into JS)
  struct timespec times[2] = {};

  // Outputs, owned by the waiting FUSE thread.
  struct stat* stat = nullptr;
  struct statvfs* statvfs = nullptr;
  char* output = nullptr;                  // read data, readlink target, xattr value/list
  std::vector<std::string>* names = nullptr;  // readdir

  // The JS Buffer handed to a read, held until the reply copies it out.
  napi_ref readBuffer = nullptr;
  char* readData = nullptr;

  std::mutex mu;
  std::condition_variable cv;
  bool done = false;
  int result = 0;
  std::atomic<int> refs{1};

  void ref() { refs.fetch_add(1); }
  void unref() {
    if (refs.fetch_sub(1) == 1) delete this;
  }

  // Answers the FUSE thread; false when it was already answered. Call with `mu` held.
  bool finishLocked(int value) {
    if (done) return false;
    result = value;
    done = true;
    cv.notify_one();
    return true;
  }

  // Answers with an error unless already answered (stop, tsfn teardown).
  void abort(int error) {
    std::lock_guard<std::mutex> lock(mu);
    finishLocked(error);
  }

  int wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return done; });
    return result;
  }
};

}  // namespace objmount
