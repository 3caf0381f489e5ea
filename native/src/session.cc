// The session's lifecycle: setup, the loop thread, calls from FUSE threads, stop.
#include "session.h"

#include <errno.h>
#include <fuse_lowlevel.h>
#include <signal.h>
#include <stdlib.h>

#include <vector>

namespace objmount {

namespace {

// Wakes the loop thread from its wait for workers (see session.h). Real-time, so neither Node
// nor libuv has a use for it; installed only if nobody else handles it.
const int kWakeSignal = SIGRTMIN + 3;

void Nothing(int) {}

void InstallWakeHandler() {
  static std::once_flag once;
  std::call_once(once, [] {
    struct sigaction current;
    if (sigaction(kWakeSignal, nullptr, &current) != 0 || current.sa_handler != SIG_DFL) return;
    struct sigaction action = {};
    action.sa_handler = Nothing;  // no SA_RESTART: the point is to interrupt the wait
    sigemptyset(&action.sa_mask);
    sigaction(kWakeSignal, &action, nullptr);
  });
}

void CallJs(napi_env env, napi_value /*js_cb*/, void* context, void* data) {
  auto* session = static_cast<Session*>(context);
  auto* message = static_cast<Message*>(data);
  if (env == nullptr) {
    // The threadsafe function is being torn down (process exit): answer, never call JS.
    if (message->kind == Message::Kind::Call) {
      auto* request = static_cast<Request*>(message);
      request->abort(-ENOTCONN);
      request->unref();
    } else {
      delete static_cast<Event*>(message);
    }
    return;
  }
  session->Deliver(env, message);
}

}  // namespace

napi_status Session::Setup(napi_env env, napi_value ops, napi_value dispatch) {
  napi_create_reference(env, dispatch, 1, &dispatch_);
  for (int i = 0; i < static_cast<int>(Op::Count); i++) {
    napi_value fn;
    napi_valuetype type;
    if (napi_get_named_property(env, ops, kOpNames[i], &fn) != napi_ok) return napi_pending_exception;
    napi_typeof(env, fn, &type);
    if (type == napi_function) napi_create_reference(env, fn, 1, &ops_[i]);
  }
  napi_value name;
  napi_create_string_utf8(env, "objmount-fuse3", NAPI_AUTO_LENGTH, &name);
  napi_status status = napi_create_threadsafe_function(env, nullptr, nullptr, name, 0, 1, this, Finalize, this, CallJs, &tsfn_);
  if (status != napi_ok) return status;
  // An unmounted session must not keep the process alive.
  return napi_unref_threadsafe_function(env, tsfn_);
}

bool Session::Start(napi_env env, napi_value onMounted, napi_value onEnded, napi_value onOpError, std::string* error) {
  if (started_) {
    *error = "this session was already mounted";
    return false;
  }
  napi_create_reference(env, onMounted, 1, &onMounted_);
  napi_create_reference(env, onEnded, 1, &onEnded_);
  if (onOpError != nullptr) napi_create_reference(env, onOpError, 1, &onOpError_);
  napi_acquire_threadsafe_function(tsfn_);  // the loop thread's share, released when it ends
  Ref();
  napi_ref_threadsafe_function(env, tsfn_);  // a mounted file system keeps the process alive

  InstallWakeHandler();
  // Threads inherit the signal mask: block everything so signals reach Node's handlers.
  sigset_t all, previous;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &previous);
  int res = pthread_create(&thread_, nullptr, LoopMain, this);
  pthread_sigmask(SIG_SETMASK, &previous, nullptr);
  if (res != 0) {
    napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
    Unref();
    napi_unref_threadsafe_function(env, tsfn_);
    *error = "cannot start the FUSE thread";
    return false;
  }
  pthread_detach(thread_);
  started_ = true;
  return true;
}

void Session::Stop(napi_env env) {
  if (env != nullptr) AbortInJs(env);
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    for (Request* request : pending_) request->abort(-ENOTCONN);
  }
  {
    std::lock_guard<std::mutex> lock(fuseMu_);
    if (fuse_ != nullptr) fuse_session_exit(fuse_get_session(fuse_));
  }
  unsigned connection = connection_.load();
  if (connection != 0) AbortConnection(connection);
  std::lock_guard<std::mutex> lock(mu_);
  stopCalled_ = true;
  if (env != nullptr && started_ && !loopEnded_) pthread_kill(thread_, kWakeSignal);
}

void Session::Unref(napi_env env) { napi_unref_threadsafe_function(env, tsfn_); }

int Session::Invalidate(const std::string& path) {
  std::lock_guard<std::mutex> lock(fuseMu_);
  if (fuse_ == nullptr) return -ENOTCONN;
  return fuse_invalidate_path(fuse_, path.c_str());
}

int Session::Call(Request* request) {
  {
    // Under mu_, because Finalize (Node tearing down) clears tsfn_ under it.
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_ || tsfn_ == nullptr) return -ENOTCONN;
    pending_.insert(request);
    request->ref();  // the queued message's reference, dropped by Deliver
    if (napi_call_threadsafe_function(tsfn_, static_cast<Message*>(request), napi_tsfn_nonblocking) != napi_ok) {
      request->unref();
      request->abort(-ENOTCONN);
    }
  }
  int result = request->wait();
  std::lock_guard<std::mutex> lock(mu_);
  pending_.erase(request);
  return result;
}

void Session::Post(Message* message) {
  std::lock_guard<std::mutex> lock(mu_);
  if (tsfn_ == nullptr || napi_call_threadsafe_function(tsfn_, message, napi_tsfn_nonblocking) != napi_ok) {
    delete static_cast<Event*>(message);
  }
}

void Session::PostMounted(const std::string& error) { Post(new Event(Message::Kind::Mounted, error)); }

void* Session::LoopMain(void* arg) {
  static_cast<Session*>(arg)->Loop();
  return nullptr;
}

void Session::Loop() {
  sigset_t wake;
  sigemptyset(&wake);
  sigaddset(&wake, kWakeSignal);
  pthread_sigmask(SIG_UNBLOCK, &wake, nullptr);
  std::string opts = "fsname=" + options_.fsName + ",subtype=" + options_.subtype + ",max_read=" + std::to_string(options_.maxRead);
  if (options_.allowOther) opts += ",allow_other";
  if (options_.defaultPermissions) opts += ",default_permissions";
  std::vector<std::string> argv = {"objmount", "-o", opts};
  if (options_.debug) argv.push_back("-d");
  struct fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  for (const std::string& a : argv) fuse_opt_add_arg(&args, a.c_str());

  struct fuse_operations ops = {};
  FillOperations(*this, &ops);
  struct fuse* fuse = fuse_new(&args, &ops, sizeof(ops), this);
  fuse_opt_free_args(&args);
  if (fuse == nullptr) {
    PostMounted("libfuse rejected the mount options " + opts);
  } else if (fuse_mount(fuse, options_.mountpoint.c_str()) != 0) {
    PostMounted("the kernel refused to mount " + options_.mountpoint + " (libfuse's reason is on stderr)");
    fuse_destroy(fuse);
  } else {
    connection_ = FindConnection(options_.mountpoint);
    {
      std::lock_guard<std::mutex> lock(fuseMu_);
      fuse_ = fuse;
    }
    if (stopping()) Stop(nullptr);  // stopped while mounting: abort what we just made
    struct fuse_loop_config* config = fuse_loop_cfg_create();
    fuse_loop_cfg_set_max_threads(config, options_.maxThreads);
    fuse_loop_cfg_set_clone_fd(config, 0);
    fuse_loop_mt(fuse, config);
    fuse_loop_cfg_destroy(config);
    {
      // No new requests can come now; anything still waiting is answered.
      std::lock_guard<std::mutex> lock(fuseMu_);
      fuse_ = nullptr;
    }
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (Request* request : pending_) request->abort(-ENOTCONN);
    }
    bool detached;
    {
      std::lock_guard<std::mutex> lock(mu_);
      detached = stopCalled_;
    }
    // After stop() the caller has detached the mount: fuse_unmount would unmount whatever is
    // at that path now. Otherwise (an outside unmount, or the loop failed) it detaches what is
    // left. Either way, destroying closes /dev/fuse, which ends the kernel connection.
    if (!detached) fuse_unmount(fuse);
    fuse_destroy(fuse);
    Post(new Event(Message::Kind::Ended));
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    loopEnded_ = true;
    if (tsfn_ != nullptr) napi_release_threadsafe_function(tsfn_, napi_tsfn_release);
  }
  Unref();
}

void Session::Finalize(napi_env /*env*/, void* data, void* /*hint*/) {
  // No napi calls here: at exit Node runs this after it has freed the references itself.
  auto* session = static_cast<Session*>(data);
  {
    // Node may finalize while FUSE threads still run (exit while mounted): they must neither
    // wait for JS nor touch the threadsafe function from now on.
    std::lock_guard<std::mutex> lock(session->mu_);
    session->tsfn_ = nullptr;
    session->stopping_ = true;
    for (Request* request : session->pending_) request->abort(-ENOTCONN);
  }
  session->Unref();
}

void Session::DropReferences(napi_env env) {
  for (napi_ref& ref : ops_) {
    if (ref != nullptr) napi_delete_reference(env, ref);
    ref = nullptr;
  }
  for (napi_ref* ref : {&onMounted_, &onEnded_, &onOpError_, &dispatch_}) {
    if (*ref != nullptr) napi_delete_reference(env, *ref);
    *ref = nullptr;
  }
}

}  // namespace objmount
