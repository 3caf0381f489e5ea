// A FUSE 3 session served by JavaScript on the JS thread, with libfuse's low-level API.
//
// How it works: mount() mounts with fuse_session_mount and watches /dev/fuse with a libuv poll
// handle on Node's own event loop. When the kernel has requests, the JS thread reads them
// (non-blocking, straight into pool blocks) and hands each to libfuse's fuse_session_process_buf,
// which calls the handlers in ll_ops.cc. A handler starts the JS operation; its answer, whenever
// it comes, is sent to the kernel from the JS thread with fuse_reply_*. No thread waits for JS and
// no request crosses threads: an operation costs one wake-up of the event loop, as it costs one
// of a C file system's threads. Operations that wait on the network run concurrently, because
// replies are asynchronous and the loop reads the next request at once.
//
// libfuse's high-level API kept the inode table before; the session keeps it now (nodes.h), so
// JS still sees paths.
//
// Kernel notifications (invalidate) may wait for requests in flight, so they are sent from a
// libuv worker thread, never from the JS thread that must answer those requests.
//
// INTERRUPT (a program stuck on a hung store got a signal): a request that only reads is answered
// EINTR at once, and JS is told (dispatch with the op number Op::Count) so it may cancel its store
// requests; the op's late answer is then only tidied up.
//
// The kernel reads files through its page cache with asynchronous READs (FUSE_ASYNC_READ), which it
// never interrupts: a killed `cat` leaves them to end on their own. So when a process closes a
// handle (FLUSH, which a dying process sends too), JS is told (dispatch with Op::Count + 1) of each
// READ of that handle that process caused and that is still in JS, so it may cancel its store
// requests. The READ is then answered as its op answers (EINTR); a page left unread that way is
// read again by whoever wants it next (the kernel then sends a READ of its own). libfuse calls the interrupt callback
// inside fuse_session_process_buf (or inside fuse_req_interrupt_func, for a request interrupted
// before it was seen), where replying is not safe: it only queues the request, and the reply is
// sent once libfuse has returned.
//
// Stopping (unmount(), the kernel ending the connection, or Node exiting) answers every request
// still waiting for JS with ENOTCONN and closes /dev/fuse, which ends the kernel connection even
// while a lazily detached mount is still in use; a late JS answer is ignored.
//
// Lifetime: the JS handle holds one reference, a started session another until it ends, and each
// notification in flight one; /dev/fuse is closed once the session has ended and no
// notification uses it.
#pragma once

#include <fuse_lowlevel.h>
#include <node_api.h>
#include <uv.h>

#include <functional>
#include <string>
#include <unordered_map>
#include <vector>

#include "nodes.h"
#include "request.h"

namespace objmount {

struct SessionOptions {
  std::string mountpoint;
  std::string fsName;
  std::string subtype;
  bool allowOther = false;
  bool defaultPermissions = false;
  bool autoCache = false;
  bool writebackCache = false;
  bool debug = false;
  double attrTimeout = 1;
  double entryTimeout = 1;
  double negativeTimeout = 0;
  unsigned maxWrite = 1 << 20;
  unsigned maxRead = 1 << 20;
};

class Session {
 public:
  Session(napi_env env, SessionOptions options) : env_(env), options_(std::move(options)) {}

  // Stores the ops and the dispatch function.
  napi_status Setup(napi_env env, napi_value ops, napi_value dispatch);
  // Mounts and starts serving; false (with a message) if it cannot. onMounted(null) is called
  // once the kernel's INIT is answered; onEnded() once the session has ended.
  bool Start(napi_env env, napi_value onMounted, napi_value onEnded, napi_value onOpError, std::string* error);
  // Answers what waits with ENOTCONN and closes the connection; safe to call more than once.
  void Stop(napi_env env);
  // JS thread: the JS handle was garbage-collected.
  void HandleGone(napi_env env);
  // Drops the kernel's cache of `path` (its name in its directory unless `pagesOnly`, its
  // attributes and pages) from a worker thread; `done(0 or -errno)` on the JS thread.
  void Invalidate(napi_env env, const std::string& path, napi_value done, bool pagesOnly = false);

  // page_store.cc: bytes JS holds, pushed into the kernel's page cache (see there).
  // Stores `size` bytes at `data` (inside `buffer`, referenced until done) at `offset` of the file
  // open as handle `fh`, from a worker thread; `done(0 or -errno)` on the JS thread: -EBUSY when
  // the file may be written, -EBADF for a handle not open.
  void StorePages(napi_env env, uint64_t fh, int64_t offset, const char* data, size_t size, napi_value buffer, napi_value done);
  // Handles the kernel holds: which inode, and whether open for writing (which blocks stores).
  void HandleOpened(uint64_t fh, fuse_ino_t ino, bool writable);
  void HandleReleased(uint64_t fh, fuse_ino_t ino, bool writable);
  // A request that may change `ino`'s pages (an open for writing, a truncate) is on its way.
  void BlockStores(fuse_ino_t ino);
  void UnblockStores(fuse_ino_t ino);
  // Runs `then` now, or once the stores in flight for `ino` have ended.
  void AfterStores(fuse_ino_t ino, std::function<void()> then);
  // Stores sent to the kernel so far (for tests and status).
  uint64_t storesSent() const { return storesSent_; }

  bool Has(Op op) const { return ops_[static_cast<int>(op)] != nullptr; }
  const SessionOptions& options() const { return options_; }
  NodeTable& nodes() { return nodes_; }

  // ll_ops.cc: the JS thread, inside fuse_session_process_buf.
  // Starts JS operation `op` of `r` (or answers ENOSYS when JS has none).
  void Run(Request* r, Op op);
  // The rest of a request once its JS operation answered (code: negative errno or a result).
  void Continue(Request* r, int code);
  // Replies and frees.
  void Fail(Request* r, int error);
  void Done(Request* r);
  // Frees a request the kernel has its answer for (or never will), with what it holds.
  void Free(Request* r);
  // A lent block after its request settled (succeeded: JS is done with it).
  void ReleaseLent(Request* r, bool succeeded);
  // INIT arrived: report the mount once libfuse has answered it.
  void Initialized() { initialized_ = true; }
  // A write's data stays in the block it was read into: read the next request elsewhere.
  char* TakeReceiveBlock();
  double now() const;

  // js_calls.cc
  void Settle(napi_env env, uint32_t id, double code, napi_value result);
  // How many requests were answered EINTR because the kernel interrupted them.
  uint64_t interruptedCount() const { return interruptedCount_; }
  void ReportOpError(napi_env env, Op op, napi_value error);

 private:
  size_t Arguments(napi_env env, Request* r, napi_value* args);
  static void OnReadable(uv_poll_t* handle, int status, int events);
  static void OnInterrupt(fuse_req_t req, void* data);
  // Answers EINTR to the requests interrupted while libfuse ran, and tells JS.
  void AnswerInterrupts();
 public:
  // ll_ops.cc, at FLUSH: tells JS that the READs of handle `fh` made for process `pid` have nobody
  // waiting for them any more (see above).
  void AbandonReads(uint64_t fh, pid_t pid);

 private:
  // dispatch(op, id) with no arguments: an interrupt (Op::Count) or an abandoned read (Op::Count + 1).
  void TellJs(uint32_t op, uint32_t id);
  // A JS answer to an interrupted request (the kernel has its EINTR): releases what it made.
  void TidyInterrupted(Request* r, int code);
  void Serve(int status);
  void ReportMounted();
  void End();
  void CloseConnection();
  static void Cleanup(void* arg);
  void DropReferences(napi_env env);
  void CallLifecycle(napi_ref fn, napi_value arg);
  void Hold() { refs_++; }
  void Drop() {
    if (--refs_ == 0) delete this;
  }
  int refs_ = 1;  // the JS handle

  napi_env env_;
  SessionOptions options_;
  napi_ref ops_[static_cast<int>(Op::Count)] = {};
  napi_ref onMounted_ = nullptr;
  napi_ref onEnded_ = nullptr;
  napi_ref onOpError_ = nullptr;
  napi_ref dispatch_ = nullptr;
  napi_ref resource_ = nullptr;
  napi_async_context context_ = nullptr;

  struct fuse_session* se_ = nullptr;
  int fd_ = -1;
  uv_poll_t* poll_ = nullptr;
  char* receive_ = nullptr;  // the block the next request is read into
  NodeTable nodes_;
  // Requests whose JS operation has not answered yet, by id.
  std::unordered_map<uint32_t, Request*> inJs_;
  // Ids of requests interrupted inside libfuse, to answer once it returns.
  std::vector<uint32_t> interrupts_;
  uint64_t interruptedCount_ = 0;
  uint32_t nextId_ = 1;
  bool started_ = false;
  bool ended_ = false;
  bool initialized_ = false;
  bool mountReported_ = false;
  bool cleanupHook_ = false;
  int notifying_ = 0;  // notifications in flight on worker threads
  bool serving_ = false;  // inside Serve: libfuse is running, so the session must not be destroyed yet

  // page_store.cc
  struct HandleInfo {
    fuse_ino_t ino = 0;
    int opens = 0;
  };
  std::unordered_map<uint64_t, HandleInfo> handles_;  // by the handle JS gave
  struct InodeStores {
    int inFlight = 0;  // stores sent and not ended
    int blocked = 0;   // writable handles, and opens for writing and truncates on their way
    std::vector<std::function<void()>> waiting;  // requests that start once inFlight is 0
  };
  std::unordered_map<fuse_ino_t, InodeStores> stores_;  // inodes with any of the above
  uint64_t storesSent_ = 0;
  void ForgetStoresIfIdle(std::unordered_map<fuse_ino_t, InodeStores>::iterator it);

  friend struct Invalidation;
  friend struct PageStore;
};

// ll_ops.cc: the low-level operation table, filled for the ops JS implements.
void FillOperations(const Session& session, struct fuse_lowlevel_ops* ops);

}  // namespace objmount
