// The session's lifecycle: setup, mount, serving /dev/fuse on the event loop, stop.
#include "session.h"

#include <errno.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>

#include <vector>

#include "block_pool.h"
#include "callback.h"

namespace objmount {

napi_status Session::Setup(napi_env env, napi_value ops, napi_value dispatch) {
  napi_create_reference(env, dispatch, 1, &dispatch_);
  for (int i = 0; i < static_cast<int>(Op::Count); i++) {
    napi_value fn;
    napi_valuetype type;
    if (napi_get_named_property(env, ops, kOpNames[i], &fn) != napi_ok) return napi_pending_exception;
    napi_typeof(env, fn, &type);
    if (type == napi_function) napi_create_reference(env, fn, 1, &ops_[i]);
  }
  // JS is called from the poll callback, outside any JS frame: a callback scope runs the promise
  // jobs and ticks that JS queues there, as for any other I/O callback.
  napi_value resource, name;
  napi_create_object(env, &resource);
  napi_create_reference(env, resource, 1, &resource_);
  napi_create_string_utf8(env, "objmount-fuse3", NAPI_AUTO_LENGTH, &name);
  return napi_async_init(env, resource, name, &context_);
}

bool Session::Start(napi_env env, napi_value onMounted, napi_value onEnded, napi_value onOpError, std::string* error) {
  if (started_) {
    *error = "this session was already mounted";
    return false;
  }
  std::string opts = "fsname=" + options_.fsName + ",subtype=" + options_.subtype + ",max_read=" + std::to_string(options_.maxRead);
  if (options_.allowOther) opts += ",allow_other";
  if (options_.defaultPermissions) opts += ",default_permissions";
  std::vector<std::string> argv = {"objmount", "-o", opts};
  if (options_.debug) argv.push_back("-d");
  struct fuse_args args = FUSE_ARGS_INIT(0, nullptr);
  for (const std::string& a : argv) fuse_opt_add_arg(&args, a.c_str());
  struct fuse_lowlevel_ops ops = {};
  FillOperations(*this, &ops);
  struct fuse_session* se = fuse_session_new(&args, &ops, sizeof(ops), this);
  fuse_opt_free_args(&args);
  if (se == nullptr) {
    *error = "libfuse rejected the mount options " + opts;
    return false;
  }
  if (fuse_session_mount(se, options_.mountpoint.c_str()) != 0) {
    fuse_session_destroy(se);
    *error = "the kernel refused to mount " + options_.mountpoint + " (libfuse's reason is on stderr)";
    return false;
  }
  int fd = fuse_session_fd(se);
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_NONBLOCK);
  uv_loop_t* loop = nullptr;
  napi_get_uv_event_loop(env, &loop);
  poll_ = new uv_poll_t;
  if (loop == nullptr || uv_poll_init(loop, poll_, fd) != 0) {
    delete poll_;
    poll_ = nullptr;
    fuse_session_unmount(se);
    fuse_session_destroy(se);
    *error = "cannot watch the FUSE device on the event loop";
    return false;
  }
  poll_->data = this;
  uv_poll_start(poll_, UV_READABLE, OnReadable);  // an active handle keeps the process alive
  se_ = se;
  fd_ = fd;
  napi_create_reference(env, onMounted, 1, &onMounted_);
  napi_create_reference(env, onEnded, 1, &onEnded_);
  if (onOpError != nullptr) napi_create_reference(env, onOpError, 1, &onOpError_);
  napi_add_env_cleanup_hook(env, Cleanup, this);
  cleanupHook_ = true;
  started_ = true;
  Hold();  // until the session ends
  return true;
}

void Session::OnReadable(uv_poll_t* handle, int status, int /*events*/) {
  static_cast<Session*>(handle->data)->Serve(status);
}

// Reads and handles what the kernel has queued (a bounded batch, so timers and sockets get their
// turn; the poll is level-triggered and calls again while more wait).
void Session::Serve(int status) {
  napi_handle_scope handles;
  napi_open_handle_scope(env_, &handles);
  napi_value resource;
  napi_get_reference_value(env_, resource_, &resource);
  napi_callback_scope scope;
  napi_open_callback_scope(env_, resource, context_, &scope);
  Hold();
  serving_ = true;
  if (status < 0) Stop(env_);
  for (int i = 0; i < 64 && !ended_; i++) {
    if (receive_ == nullptr) receive_ = AllocBlock();
    if (receive_ == nullptr) break;  // out of memory: try again on the next callback
    ssize_t n = read(fd_, receive_, kBlockSize);
    if (n < 0) {
      int error = errno;
      if (error == EINTR || error == ENOENT) continue;  // ENOENT: the request was interrupted
      if (error == EAGAIN) break;
      Stop(env_);  // ENODEV: unmounted, or the connection was aborted
      break;
    }
    struct fuse_buf buf = {};
    buf.mem = receive_;
    buf.size = static_cast<size_t>(n);
    fuse_session_process_buf(se_, &buf);
    if (!interrupts_.empty()) AnswerInterrupts();
    if (initialized_ && !mountReported_) ReportMounted();
  }
  serving_ = false;
  if (ended_) CloseConnection();  // stopped by an op JS ran from inside libfuse
  napi_close_callback_scope(env_, scope);
  napi_close_handle_scope(env_, handles);
  Drop();
}

// libfuse's interrupt callback (inside fuse_session_process_buf or fuse_req_interrupt_func, with
// the request's lock held): only notes the request, see session.h.
void Session::OnInterrupt(fuse_req_t req, void* data) {
  auto* session = static_cast<Session*>(fuse_req_userdata(req));
  auto* r = static_cast<Request*>(data);  // alive: libfuse forgets the callback when we reply
  if (r->interrupted) return;
  r->interrupted = true;
  // Not with JS yet (interrupted before we saw it): Run answers EINTR itself.
  auto it = session->inJs_.find(r->jsId);
  if (r->jsId != 0 && it != session->inJs_.end() && it->second == r) session->interrupts_.push_back(r->jsId);
}

void Session::AnswerInterrupts() {
  std::vector<uint32_t> ids;
  ids.swap(interrupts_);
  for (uint32_t id : ids) {
    auto it = inJs_.find(id);
    if (it == inJs_.end() || it->second->req == nullptr) continue;
    Request* r = it->second;
    fuse_reply_err(r->req, EINTR);
    r->req = nullptr;  // the JS op goes on; its answer is tidied up (TidyInterrupted)
    interruptedCount_++;
    // Tell JS, so it may cancel the op's store requests.
    TellJs(static_cast<uint32_t>(Op::Count), id);
  }
}

void Session::AbandonReads(uint64_t fh, pid_t pid) {
  std::vector<uint32_t> ids;
  for (const auto& [id, r] : inJs_) {
    if (r->kind == Kind::Read && r->req != nullptr && r->fh == fh && r->pid == pid) ids.push_back(id);
  }
  for (uint32_t id : ids) TellJs(static_cast<uint32_t>(Op::Count) + 1, id);
}

void Session::TellJs(uint32_t op, uint32_t id) {
  napi_value dispatch, global, args[2];
  napi_get_reference_value(env_, dispatch_, &dispatch);
  napi_get_global(env_, &global);
  napi_create_uint32(env_, op, &args[0]);
  napi_create_uint32(env_, id, &args[1]);
  if (napi_call_function(env_, global, dispatch, 2, args, nullptr) != napi_ok) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env_, &ignored);  // telling JS is a courtesy: the kernel's answer does not depend on it
  }
}

void Session::TidyInterrupted(Request* r, int code) {
  if (r->lent != nullptr) ReleaseLent(r, code >= 0);
  // An open that succeeded after all made a handle the kernel never got.
  if (r->kind == Kind::Open && r->op == Op::Open && code >= 0) {
    auto* release = new Request(nullptr, Kind::Detached);
    release->path = r->path;
    release->fh = r->outFh;
    Free(r);
    return Run(release, Op::Release);
  }
  Free(r);
}

char* Session::TakeReceiveBlock() {
  char* block = receive_;
  receive_ = nullptr;
  return block;
}

double Session::now() const {
  struct timespec t;
  clock_gettime(CLOCK_MONOTONIC, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) / 1e9;
}

void Session::ReportMounted() {
  mountReported_ = true;
  if (Has(Op::Init)) Run(new Request(nullptr, Kind::Detached), Op::Init);
  napi_value arg;
  napi_get_null(env_, &arg);
  CallLifecycle(onMounted_, arg);
}

void Session::CallLifecycle(napi_ref ref, napi_value arg) {
  if (ref == nullptr) return;
  napi_value fn, global;
  napi_get_reference_value(env_, ref, &fn);
  napi_get_global(env_, &global);
  if (napi_call_function(env_, global, fn, 1, &arg, nullptr) == napi_pending_exception) {
    napi_value error;
    napi_get_and_clear_last_exception(env_, &error);
    napi_fatal_exception(env_, error);  // a throwing lifecycle callback is the caller's bug: surface it
  }
}

void Session::Stop(napi_env env) {
  if (!started_ || ended_) return;
  ended_ = true;
  if (poll_ != nullptr) {
    uv_poll_stop(poll_);
    uv_close(reinterpret_cast<uv_handle_t*>(poll_), [](uv_handle_t* h) { delete reinterpret_cast<uv_poll_t*>(h); });
    poll_ = nullptr;
  }
  // Answer everything JS still holds; a late answer finds no request and is ignored.
  std::unordered_map<uint32_t, Request*> pending;
  pending.swap(inJs_);
  for (auto& entry : pending) {
    Request* r = entry.second;
    if (r->kind == Kind::Opendir || r->kind == Kind::Releasedir) delete r->dir;
    if (r->lent != nullptr) ReleaseLent(r, false);
    Fail(r, ENOTCONN);
  }
  FreeBlock(receive_);
  receive_ = nullptr;
  CloseConnection();
  if (cleanupHook_) napi_remove_env_cleanup_hook(env, Cleanup, this);
  cleanupHook_ = false;
  napi_value arg;
  napi_get_null(env, &arg);
  CallLifecycle(onEnded_, arg);
  DropReferences(env);
  Drop();  // the started session's reference
}

// Closing /dev/fuse ends the kernel connection: whatever still uses the mount gets ENOTCONN.
void Session::CloseConnection() {
  if (notifying_ > 0 || serving_ || se_ == nullptr) return;  // the last notification, or Serve, closes it
  fuse_session_destroy(se_);
  se_ = nullptr;
  fd_ = -1;
}

// Node is tearing the environment down with the session still mounted: no JS any more.
void Session::Cleanup(void* arg) {
  auto* session = static_cast<Session*>(arg);
  session->cleanupHook_ = false;
  if (session->ended_) return;
  session->ended_ = true;
  if (session->poll_ != nullptr) uv_poll_stop(session->poll_);
  for (auto& entry : session->inJs_) {
    if (entry.second->req != nullptr) fuse_reply_err(entry.second->req, ENOTCONN);
  }
  session->inJs_.clear();  // (their memory goes with the process)
  session->CloseConnection();
}

void Session::HandleGone(napi_env env) {
  if (!started_ || ended_) DropReferences(env);
  Drop();
}

void Session::DropReferences(napi_env env) {
  for (napi_ref& ref : ops_) {
    if (ref != nullptr) napi_delete_reference(env, ref);
    ref = nullptr;
  }
  for (napi_ref* ref : {&onMounted_, &onEnded_, &onOpError_, &dispatch_, &resource_}) {
    if (*ref != nullptr) napi_delete_reference(env, *ref);
    *ref = nullptr;
  }
  if (context_ != nullptr) napi_async_destroy(env, context_);
  context_ = nullptr;
}

// Kernel notifications may wait for FUSE requests in flight, which wait for the JS thread: they
// are sent from a libuv worker thread.
struct Invalidation {
  Session* session;
  struct fuse_session* se = nullptr;
  fuse_ino_t ino = 0;     // the inode whose attributes and pages go
  fuse_ino_t parent = 0;  // the directory whose entry `name` goes
  std::string name;
  int result = 0;
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;
};

void Session::Invalidate(napi_env env, const std::string& path, napi_value done, bool pagesOnly) {
  auto* job = new Invalidation{this};
  if (!started_ || ended_) {
    job->result = -ENOTCONN;
  } else {
    job->ino = nodes_.Resolve(path);
    size_t slash = path.find_last_of('/');
    if (!pagesOnly && path.size() > 1 && slash + 1 < path.size()) {
      job->parent = nodes_.Resolve(slash == 0 ? "/" : path.substr(0, slash));
      job->name = path.substr(slash + 1);
    }
    job->result = -ENOENT;  // the kernel holds nothing there, so has nothing to drop
  }
  bool notify = job->ino != 0 || job->parent != 0;
  if (notify) {
    job->se = se_;
    notifying_++;
  }
  Hold();
  napi_create_reference(env, done, 1, &job->callback);
  napi_value name;
  napi_create_string_utf8(env, "objmount-invalidate", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(
      env, nullptr, name,
      [](napi_env, void* data) {
        auto* job = static_cast<Invalidation*>(data);
        // The name first (a file deleted elsewhere is looked up again), then the inode's
        // attributes and pages (a file changed elsewhere is read again).
        int entry = -ENOENT, inode = -ENOENT;
        if (job->parent != 0) entry = fuse_lowlevel_notify_inval_entry(job->se, job->parent, job->name.c_str(), job->name.size());
        if (job->ino != 0) inode = fuse_lowlevel_notify_inval_inode(job->se, job->ino, 0, 0);
        job->result = entry == 0 || inode == 0 ? 0 : (job->ino != 0 ? inode : entry);
      },
      [](napi_env env, napi_status, void* data) {
        auto* job = static_cast<Invalidation*>(data);
        Session* session = job->session;
        if (job->se != nullptr && --session->notifying_ == 0 && session->ended_) session->CloseConnection();
        napi_ref callback = job->callback;
        napi_value arg;
        napi_create_int32(env, job->result, &arg);
        napi_delete_async_work(env, job->work);
        delete job;
        CallOnce(env, callback, arg);
        session->Drop();
      },
      job, &job->work);
  napi_queue_async_work(env, job->work);
}

}  // namespace objmount
