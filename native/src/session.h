// A FUSE 3 session served by JavaScript.
//
// How it works: mount() starts a "loop thread" (signals blocked, so SIGINT/SIGTERM keep going to
// Node) that mounts with libfuse's high-level API and runs fuse_loop_mt(). Its worker threads
// call the handlers in fuse_ops.cc, which build a Request, queue it on one napi threadsafe
// function and wait for the JS answer (js_calls.cc). Everything JS-facing (ops, callbacks) is
// touched only on the JS thread.
//
// Stopping never leaves a FUSE thread waiting: stop() marks the session stopping (new requests
// are answered ENOTCONN without reaching JS), answers every pending request ENOTCONN and asks
// libfuse to exit. libfuse's loop only notices between requests, and a detached mount that some
// process still uses sends none, so stop() also aborts the kernel connection through fusectl
// when /sys/fs/fuse/connections is mounted, and signals the loop thread (kWakeSignal, a no-op
// handler), whose wait for its workers then returns; libfuse cancels the workers blocked in
// read(). The loop thread closes /dev/fuse (which ends the kernel connection) and posts Ended.
//
// Lifetime: the threadsafe function is shared by the JS handle and the loop thread (one thread
// count each) and closes once both let go, or when Node tears the environment down. The session
// itself is counted apart (handle, threadsafe function, loop thread), since at exit Node may
// finalize the threadsafe function before the handle, while the loop thread still runs.
#pragma once

#include <fuse.h>
#include <node_api.h>
#include <pthread.h>

#include <atomic>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>

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
  unsigned maxThreads = 16;
};

class Session {
 public:
  Session(napi_env env, SessionOptions options) : env_(env), options_(std::move(options)) {}

  // JS thread. Stores the ops and creates the threadsafe function (unreferenced until mount).
  napi_status Setup(napi_env env, napi_value ops, napi_value dispatch);
  // JS thread. Starts the loop thread; false (with a message) if it cannot.
  bool Start(napi_env env, napi_value onMounted, napi_value onEnded, napi_value onOpError, std::string* error);
  // JS thread (or the loop thread, with env null). See the header comment; safe to call more
  // than once.
  void Stop(napi_env env);
  // JS thread. Lets the process exit even if the loop has not ended yet.
  void Unref(napi_env env);
  // Keep the session alive across asynchronous work (the handle holds one share, too).
  void Hold() {
    if (tsfn_ != nullptr) napi_acquire_threadsafe_function(tsfn_);
  }
  void Release() {
    if (tsfn_ != nullptr) napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  }
  // JS thread: the JS handle was garbage-collected.
  void HandleGone(napi_env env) {
    if (!started_) DropReferences(env);
    Release();
    Unref();
  }
  // JS thread: the JS functions are no longer needed (ended, or never mounted).
  void DropReferences(napi_env env);
  // Any thread but the JS thread: fuse_invalidate_path, or -ENOTCONN when not mounted.
  int Invalidate(const std::string& path);

  // FUSE threads. Queues the request and waits for its answer (negative errno or a result).
  int Call(Request* request);
  bool Has(Op op) const { return ops_[static_cast<int>(op)] != nullptr; }
  const SessionOptions& options() const { return options_; }
  bool stopping() {
    std::lock_guard<std::mutex> lock(mu_);
    return stopping_;
  }
  void PostMounted(const std::string& error);

  // JS thread (js_calls.cc).
  void Deliver(napi_env env, Message* message);
  // The JS answer to request `id` (code: negative errno, or a result such as a byte count).
  void Settle(napi_env env, uint32_t id, double code, napi_value result);
  void ReportOpError(napi_env env, Op op, napi_value error);

 private:
  static void* LoopMain(void* arg);
  void Loop();
  void Post(Message* message);
  static void Finalize(napi_env env, void* data, void* hint);
  void ReleaseJs(napi_env env, Request* request);
  void AbortInJs(napi_env env);
  void Ref() { refs_.fetch_add(1); }
  void Unref() {
    if (refs_.fetch_sub(1) == 1) delete this;
  }
  std::atomic<int> refs_{2};  // the JS handle and the threadsafe function

  napi_env env_;
  SessionOptions options_;
  napi_ref ops_[static_cast<int>(Op::Count)] = {};
  napi_ref onMounted_ = nullptr;
  napi_ref onEnded_ = nullptr;
  napi_ref onOpError_ = nullptr;
  napi_ref dispatch_ = nullptr;
  // Requests handed to JS and not answered yet, by id. JS thread only.
  std::unordered_map<uint32_t, Request*> inJs_;
  uint32_t nextId_ = 1;
  napi_threadsafe_function tsfn_ = nullptr;
  std::mutex fuseMu_;  // guards fuse_, which the loop thread clears before destroying it
  struct fuse* fuse_ = nullptr;
  pthread_t thread_{};
  bool started_ = false;
  bool stopCalled_ = false;  // under mu_
  bool loopEnded_ = false;   // under mu_: thread_ may no longer exist
  std::atomic<unsigned> connection_{0};  // the fusectl connection id (device minor), 0 if unknown

  std::mutex mu_;
  bool stopping_ = false;
  std::unordered_set<Request*> pending_;
};

// fuse_ops.cc: the libfuse operation table, filled for the ops JS implements.
void FillOperations(const Session& session, struct fuse_operations* ops);
// connection.cc
unsigned FindConnection(const std::string& mountpoint);
bool AbortConnection(unsigned connection);

}  // namespace objmount
