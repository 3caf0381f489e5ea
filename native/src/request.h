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

// Who frees a read's memory. The FUSE thread allocates it; the JS op fills it through an
// external Buffer. A successful reply hands it to libfuse (which frees it after replying to the
// kernel) and detaches the Buffer, so JS can no longer reach it. Otherwise (an error, or the
// request aborted by stop() while the op may still hold the Buffer, or an fs.read from libuv's
// thread pool may still be writing into it) the memory is freed once both the request is settled
// and the Buffer is garbage-collected. Touched on the JS thread only.
struct ReadBlock {
  char* mem;
  bool settled = false;      // answered, or aborted
  bool handed = false;       // libfuse owns `mem`
  bool bufferGone = false;   // the JS Buffer was collected
  // Call when one of the two conditions becomes true; frees what nobody needs any more.
  static void Release(ReadBlock* block);
};

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
  size_t capacity = 0;     // a write: what its memory was allocated for (AllocWriteMemory)
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

  // A read's memory, wrapped as the JS Buffer the op fills (no copy): see ReadBlock.
  napi_ref readBuffer = nullptr;
  ReadBlock* readBlock = nullptr;  // JS thread only
  bool readShared = false;         // under `mu`: JS got the memory, so the JS side frees it on failure
  bool inputTaken = false;         // under `mu`: a write's copy became a JS Buffer, which frees it

  std::mutex mu;
  std::condition_variable cv;
  std::atomic<bool> done{false};  // under `mu`
  int result = 0;
  std::atomic<int> refs{1};

  void ref() { refs.fetch_add(1); }
  void unref() {
    if (refs.fetch_sub(1) == 1) delete this;
  }

  // Records the answer; false when it was already answered. Call with `mu` held, then Wake()
  // once `mu` is released (waking a thread that would block on `mu` at once wastes a switch).
  bool finishLocked(int value) {
    if (done.load(std::memory_order_relaxed)) return false;
    result = value;
    done.store(true, std::memory_order_release);
    return true;
  }
  void Wake() { cv.notify_one(); }

  // Answers with an error unless already answered (stop, tsfn teardown).
  void abort(int error) {
    bool finished;
    {
      std::lock_guard<std::mutex> lock(mu);
      finished = finishLocked(error);
    }
    if (finished) Wake();
  }

  // (Spinning before sleeping was tried: on a busy 2-core machine it cost more than it saved.)
  int wait() {
    std::unique_lock<std::mutex> lock(mu);
    cv.wait(lock, [this] { return done.load(std::memory_order_relaxed); });
    return result;
  }
};

}  // namespace objmount
