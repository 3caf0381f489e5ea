// Pages pushed into the kernel's page cache (FUSE_NOTIFY_STORE), and what keeps them true.
//
// JS may hand the kernel bytes of a file it holds in memory (StorePages), so that later reads of
// them are served by the page cache without a FUSE request. The kernel writes stored bytes over
// whatever its pages hold, dirty or not, and extends the file's size to cover them; it has no
// notion of which version of a file they come from. So the session keeps three rules:
//
// - Never into a file that may be written: a store is refused (-EBUSY) for a handle open for
//   writing, and for an inode with a handle open for writing, an open for writing on its way, or a
//   truncate (SETATTR of the size) on its way. Every write needs an open for writing first, so no
//   write can be in the kernel while a store is.
// - Nothing overtakes a store: an OPEN or SETATTR of an inode waits, before its JS operation starts,
//   until the stores in flight for that inode have ended. A store made for the version one handle
//   reads can thus never land after the open that starts a writer, after a truncate, or after an
//   open whose reply drops the file's pages because the object changed (no keep_cache).
// - Stores are sent from a libuv worker thread, never from the JS thread: the kernel locks each
//   page while it fills it, and a page may be locked by a READ in flight, which only the JS thread
//   can answer.
//
// The bytes stay where JS has them (a reference to their Buffer is held until the store ends): the
// caller must not reuse that memory meanwhile.
#include <errno.h>

#include "callback.h"
#include "session.h"

namespace objmount {

struct PageStore {
  Session* session;
  struct fuse_session* se = nullptr;  // null: refused, nothing to send
  fuse_ino_t ino = 0;
  int64_t offset = 0;
  const char* data = nullptr;
  size_t size = 0;
  int result = 0;
  napi_ref buffer = nullptr;
  napi_ref callback = nullptr;
  napi_async_work work = nullptr;
};

// A file system may give one handle number to several opens (objmount never does): the inode
// of the last one is kept, until all are released. What blocks stores is counted per inode, from
// the open flags the kernel gives at open and again at release, so it stays right either way.
void Session::HandleOpened(uint64_t fh, fuse_ino_t ino, bool writable) {
  HandleInfo& handle = handles_[fh];
  handle.ino = ino;
  handle.opens++;
  if (writable) BlockStores(ino);
}

void Session::HandleReleased(uint64_t fh, fuse_ino_t ino, bool writable) {
  if (writable) UnblockStores(ino);
  auto it = handles_.find(fh);
  if (it != handles_.end() && --it->second.opens <= 0) handles_.erase(it);
}

void Session::BlockStores(fuse_ino_t ino) { stores_[ino].blocked++; }

void Session::UnblockStores(fuse_ino_t ino) {
  auto it = stores_.find(ino);
  if (it == stores_.end()) return;
  if (it->second.blocked > 0) it->second.blocked--;
  ForgetStoresIfIdle(it);
}

void Session::ForgetStoresIfIdle(std::unordered_map<fuse_ino_t, InodeStores>::iterator it) {
  if (it->second.inFlight == 0 && it->second.blocked == 0 && it->second.waiting.empty()) stores_.erase(it);
}

void Session::AfterStores(fuse_ino_t ino, std::function<void()> then) {
  auto it = stores_.find(ino);
  if (it == stores_.end() || it->second.inFlight == 0) return then();
  it->second.waiting.push_back(std::move(then));
}

void Session::StorePages(napi_env env, uint64_t fh, int64_t offset, const char* data, size_t size, napi_value buffer,
                         napi_value done) {
  auto* job = new PageStore{this};
  auto handle = handles_.find(fh);
  if (!started_ || ended_) {
    job->result = -ENOTCONN;
  } else if (handle == handles_.end()) {
    job->result = -EBADF;
  } else {
    InodeStores& stores = stores_[handle->second.ino];
    if (stores.blocked > 0) {
      job->result = -EBUSY;
      ForgetStoresIfIdle(stores_.find(handle->second.ino));
    } else {
      stores.inFlight++;
      storesSent_++;
      job->se = se_;
      job->ino = handle->second.ino;
      job->offset = offset;
      job->data = data;
      job->size = size;
      notifying_++;
    }
  }
  Hold();
  napi_create_reference(env, buffer, 1, &job->buffer);
  napi_create_reference(env, done, 1, &job->callback);
  napi_value name;
  napi_create_string_utf8(env, "objmount-store-pages", NAPI_AUTO_LENGTH, &name);
  napi_create_async_work(
      env, nullptr, name,
      [](napi_env, void* data) {
        auto* job = static_cast<PageStore*>(data);
        if (job->se == nullptr) return;
        struct fuse_bufvec bufv = FUSE_BUFVEC_INIT(job->size);
        bufv.buf[0].mem = const_cast<char*>(job->data);
        job->result = fuse_lowlevel_notify_store(job->se, job->ino, static_cast<off_t>(job->offset), &bufv,
                                                 static_cast<enum fuse_buf_copy_flags>(0));
      },
      [](napi_env env, napi_status, void* data) {
        auto* job = static_cast<PageStore*>(data);
        Session* session = job->session;
        if (job->se != nullptr) {
          auto it = session->stores_.find(job->ino);
          if (it != session->stores_.end() && --it->second.inFlight == 0) {
            // What waited for the inode's stores goes on (it may reply: the connection is still
            // held open by this store until `notifying_` drops below).
            std::vector<std::function<void()>> waiting;
            waiting.swap(it->second.waiting);
            session->ForgetStoresIfIdle(it);
            for (auto& then : waiting) then();
          }
          if (--session->notifying_ == 0 && session->ended_) session->CloseConnection();
        }
        napi_ref callback = job->callback;
        napi_value arg;
        napi_create_int32(env, job->result, &arg);
        napi_delete_reference(env, job->buffer);
        napi_delete_async_work(env, job->work);
        delete job;
        CallOnce(env, callback, arg);
        session->Drop();
      },
      job, &job->work);
  napi_queue_async_work(env, job->work);
}

}  // namespace objmount
