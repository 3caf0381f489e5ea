// libfuse's high-level operations, run on FUSE worker threads: each one packs its arguments into
// a Request, hands it to JS through the session and returns the answer.
//
// Directories are read in pages: opendir makes a native handle that caches the names JS listed
// (fetched again when a reader starts over at offset 0), and readdir passes each entry's offset
// to the filler, so the kernel asks for the rest with further requests instead of one reply
// holding the whole directory.
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <string>
#include <vector>

#include "session.h"
#include "write_memory.h"

namespace objmount {

namespace {

Session* Current() { return static_cast<Session*>(fuse_get_context()->private_data); }

// Runs `op` with the inputs `fill` sets, waiting for JS; returns its errno or result.
template <typename Fill>
int Run(Op op, const char* path, Fill fill) {
  Session* session = Current();
  auto* request = new Request(session, op);
  if (path != nullptr) request->path = path;
  fill(*request);
  int result = session->Call(request);
  request->unref();
  return result;
}

int Simple(Op op, const char* path) {
  return Run(op, path, [](Request&) {});
}

struct DirHandle {
  uint64_t fh = 0;  // JS's own handle, from its opendir
  bool listed = false;
  std::vector<std::string> names;
};

void* Init(struct fuse_conn_info* conn, struct fuse_config* cfg) {
  Session* session = Current();
  const SessionOptions& o = session->options();
  // Bigger writes mean fewer round trips to JS; libfuse derives max_pages from max_write.
  conn->max_write = o.maxWrite;
  conn->max_read = o.maxRead;
  if (o.writebackCache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  cfg->attr_timeout = o.attrTimeout;
  cfg->entry_timeout = o.entryTimeout;
  cfg->negative_timeout = o.negativeTimeout;
  // Keep a file's pages across opens while its mtime and size are unchanged.
  cfg->auto_cache = o.autoCache ? 1 : 0;
  cfg->use_ino = 0;
  cfg->nullpath_ok = 0;
  if (session->Has(Op::Init)) Simple(Op::Init, nullptr);
  session->PostMounted("");
  return session;  // becomes fuse_get_context()->private_data for every later call
}

int Getattr(const char* path, struct stat* st, struct fuse_file_info* fi) {
  memset(st, 0, sizeof(*st));
  bool withHandle = fi != nullptr && Current()->Has(Op::Fgetattr);
  return Run(withHandle ? Op::Fgetattr : Op::Getattr, path, [&](Request& r) {
    r.stat = st;
    if (withHandle) r.fh = fi->fh;
  });
}

int Statfs(const char* path, struct statvfs* st) {
  memset(st, 0, sizeof(*st));
  return Run(Op::Statfs, path, [&](Request& r) { r.statvfs = st; });
}

int Opendir(const char* path, struct fuse_file_info* fi) {
  auto* dir = new DirHandle();
  if (Current()->Has(Op::Opendir)) {
    uint64_t fh = 0;
    int res = Run(Op::Opendir, path, [&](Request& r) {
      r.flags = fi->flags;
      r.output = reinterpret_cast<char*>(&fh);
    });
    if (res < 0) {
      delete dir;
      return res;
    }
    dir->fh = fh;
  }
  fi->fh = reinterpret_cast<uintptr_t>(dir);
  return 0;
}

int Readdir(const char* path, void* buf, fuse_fill_dir_t filler, off_t offset, struct fuse_file_info* fi,
            enum fuse_readdir_flags /*flags*/) {
  auto* dir = reinterpret_cast<DirHandle*>(fi->fh);
  if (offset == 0 || !dir->listed) {
    dir->names.clear();
    int res = Run(Op::Readdir, path, [&](Request& r) { r.names = &dir->names; });
    if (res < 0) return res;
    dir->listed = true;
  }
  for (size_t i = static_cast<size_t>(offset); i < dir->names.size(); i++) {
    if (filler(buf, dir->names[i].c_str(), nullptr, static_cast<off_t>(i + 1), static_cast<fuse_fill_dir_flags>(0)) != 0) break;
  }
  return 0;
}

int Releasedir(const char* path, struct fuse_file_info* fi) {
  auto* dir = reinterpret_cast<DirHandle*>(fi->fh);
  int res = 0;
  if (Current()->Has(Op::Releasedir)) res = Run(Op::Releasedir, path, [&](Request& r) { r.fh = dir->fh; });
  delete dir;
  return res;
}

int Fsyncdir(const char* path, int datasync, struct fuse_file_info* fi) {
  auto* dir = reinterpret_cast<DirHandle*>(fi->fh);
  return Run(Op::Fsyncdir, path, [&](Request& r) {
    r.datasync = datasync != 0;
    r.fh = dir->fh;
  });
}

int Mkdir(const char* path, mode_t mode) {
  return Run(Op::Mkdir, path, [&](Request& r) { r.mode = mode; });
}

int Rmdir(const char* path) { return Simple(Op::Rmdir, path); }
int Unlink(const char* path) { return Simple(Op::Unlink, path); }

int Create(const char* path, mode_t mode, struct fuse_file_info* fi) {
  uint64_t fh = 0;
  int res = Run(Op::Create, path, [&](Request& r) {
    r.mode = mode;
    r.flags = fi->flags;
    r.output = reinterpret_cast<char*>(&fh);
  });
  if (res >= 0) fi->fh = fh;
  return res < 0 ? res : 0;
}

int Open(const char* path, struct fuse_file_info* fi) {
  uint64_t fh = 0;
  int res = Run(Op::Open, path, [&](Request& r) {
    r.flags = fi->flags;
    r.output = reinterpret_cast<char*>(&fh);
  });
  if (res >= 0) fi->fh = fh;
  return res < 0 ? res : 0;
}

// read_buf rather than read: the memory JS fills is then ours to give to libfuse (no copy), or
// to leave to JS when the request fails (see ReadBlock in request.h).
int ReadBuf(const char* path, struct fuse_bufvec** bufp, size_t size, off_t offset, struct fuse_file_info* fi) {
  char* mem = static_cast<char*>(malloc(size > 0 ? size : 1));
  if (mem == nullptr) return -ENOMEM;
  Session* session = Current();
  auto* request = new Request(session, Op::Read);
  request->path = path;
  request->fh = fi->fh;
  request->output = mem;
  request->size = size;
  request->offset = offset;
  int result = session->Call(request);
  bool shared;
  {
    std::lock_guard<std::mutex> lock(request->mu);
    shared = request->readShared;
  }
  request->unref();
  if (result < 0) {
    if (!shared) free(mem);
    return result;
  }
  auto* buf = static_cast<struct fuse_bufvec*>(malloc(sizeof(struct fuse_bufvec)));
  if (buf == nullptr) return -ENOMEM;  // (JS was told the read succeeded; mem leaks on this path)
  *buf = FUSE_BUFVEC_INIT(static_cast<size_t>(result));
  buf->buf[0].mem = mem;
  *bufp = buf;  // libfuse frees both after replying
  return 0;
}

// write_buf rather than write: libfuse receives requests by splicing them into a pipe, and the
// data is read from there straight into memory that becomes the JS Buffer's own (JS may keep
// it; its finalizer frees it), with no copy on the JS thread; if JS never got it, it is freed here.
int WriteBuf(const char* path, struct fuse_bufvec* buf, off_t offset, struct fuse_file_info* fi) {
  size_t size = fuse_buf_size(buf);
  char* data = AllocWriteMemory(size);
  if (data == nullptr) return -ENOMEM;
  struct fuse_bufvec dst = FUSE_BUFVEC_INIT(size);
  dst.buf[0].mem = data;
  ssize_t copied = fuse_buf_copy(&dst, buf, static_cast<enum fuse_buf_copy_flags>(0));
  if (copied < 0) {
    FreeWriteMemory(data, size);
    return static_cast<int>(copied);
  }
  Session* session = Current();
  auto* request = new Request(session, Op::Write);
  request->path = path;
  request->fh = fi->fh;
  request->input = data;
  request->size = static_cast<size_t>(copied);
  request->capacity = size;
  request->offset = offset;
  int result = session->Call(request);
  bool taken;
  {
    std::lock_guard<std::mutex> lock(request->mu);
    taken = request->inputTaken;
  }
  request->unref();
  if (!taken) FreeWriteMemory(data, size);
  return result;
}

int WithHandle(Op op, const char* path, struct fuse_file_info* fi) {
  return Run(op, path, [&](Request& r) { r.fh = fi->fh; });
}

int Flush(const char* path, struct fuse_file_info* fi) { return WithHandle(Op::Flush, path, fi); }
int Release(const char* path, struct fuse_file_info* fi) { return WithHandle(Op::Release, path, fi); }

int Fsync(const char* path, int datasync, struct fuse_file_info* fi) {
  return Run(Op::Fsync, path, [&](Request& r) {
    r.datasync = datasync != 0;
    r.fh = fi->fh;
  });
}

int Truncate(const char* path, off_t size, struct fuse_file_info* fi) {
  bool withHandle = fi != nullptr && Current()->Has(Op::Ftruncate);
  if (!withHandle && !Current()->Has(Op::Truncate)) return -ENOSYS;
  return Run(withHandle ? Op::Ftruncate : Op::Truncate, path, [&](Request& r) {
    r.offset = size;
    if (withHandle) r.fh = fi->fh;
  });
}

int Rename(const char* from, const char* to, unsigned int flags) {
  // RENAME_NOREPLACE/EXCHANGE cannot be done atomically on a store; callers fall back on EINVAL.
  if (flags != 0) return -EINVAL;
  return Run(Op::Rename, from, [&](Request& r) { r.path2 = to; });
}

int Symlink(const char* target, const char* path) {
  // JS gets (target, path), as with fuse-native.
  return Run(Op::Symlink, target, [&](Request& r) { r.path2 = path; });
}

int Link(const char* from, const char* to) {
  return Run(Op::Link, from, [&](Request& r) { r.path2 = to; });
}

int Readlink(const char* path, char* buf, size_t size) {
  int res = Run(Op::Readlink, path, [&](Request& r) {
    r.output = buf;
    r.size = size;
  });
  return res < 0 ? res : 0;
}

int Mknod(const char* path, mode_t mode, dev_t dev) {
  return Run(Op::Mknod, path, [&](Request& r) {
    r.mode = mode;
    r.dev = dev;
  });
}

int Chmod(const char* path, mode_t mode, struct fuse_file_info* /*fi*/) {
  return Run(Op::Chmod, path, [&](Request& r) { r.mode = mode; });
}

int Chown(const char* path, uid_t uid, gid_t gid, struct fuse_file_info* /*fi*/) {
  return Run(Op::Chown, path, [&](Request& r) {
    r.uid = uid;
    r.gid = gid;
  });
}

int Utimens(const char* path, const struct timespec tv[2], struct fuse_file_info* /*fi*/) {
  return Run(Op::Utimens, path, [&](Request& r) {
    r.times[0] = tv[0];
    r.times[1] = tv[1];
  });
}

int Setxattr(const char* path, const char* name, const char* value, size_t size, int flags) {
  return Run(Op::Setxattr, path, [&](Request& r) {
    r.path2 = name;
    r.input = value;
    r.size = size;
    r.flags = flags;
  });
}

int Getxattr(const char* path, const char* name, char* value, size_t size) {
  return Run(Op::Getxattr, path, [&](Request& r) {
    r.path2 = name;
    r.output = value;
    r.size = size;
  });
}

int Listxattr(const char* path, char* list, size_t size) {
  return Run(Op::Listxattr, path, [&](Request& r) {
    r.output = list;
    r.size = size;
  });
}

int Removexattr(const char* path, const char* name) {
  return Run(Op::Removexattr, path, [&](Request& r) { r.path2 = name; });
}

int Access(const char* path, int mask) {
  return Run(Op::Access, path, [&](Request& r) { r.flags = mask; });
}

}  // namespace

void FillOperations(const Session& s, struct fuse_operations* ops) {
  ops->init = Init;
  if (s.Has(Op::Getattr)) ops->getattr = Getattr;
  if (s.Has(Op::Statfs)) ops->statfs = Statfs;
  if (s.Has(Op::Readdir)) {
    ops->opendir = Opendir;
    ops->readdir = Readdir;
    ops->releasedir = Releasedir;
  }
  if (s.Has(Op::Fsyncdir)) ops->fsyncdir = Fsyncdir;
  if (s.Has(Op::Mkdir)) ops->mkdir = Mkdir;
  if (s.Has(Op::Rmdir)) ops->rmdir = Rmdir;
  if (s.Has(Op::Unlink)) ops->unlink = Unlink;
  if (s.Has(Op::Create)) ops->create = Create;
  if (s.Has(Op::Open)) ops->open = Open;
  if (s.Has(Op::Read)) ops->read_buf = ReadBuf;
  if (s.Has(Op::Write)) ops->write_buf = WriteBuf;
  if (s.Has(Op::Flush)) ops->flush = Flush;
  if (s.Has(Op::Release)) ops->release = Release;
  if (s.Has(Op::Fsync)) ops->fsync = Fsync;
  if (s.Has(Op::Truncate) || s.Has(Op::Ftruncate)) ops->truncate = Truncate;
  if (s.Has(Op::Rename)) ops->rename = Rename;
  if (s.Has(Op::Symlink)) ops->symlink = Symlink;
  if (s.Has(Op::Link)) ops->link = Link;
  if (s.Has(Op::Readlink)) ops->readlink = Readlink;
  if (s.Has(Op::Mknod)) ops->mknod = Mknod;
  if (s.Has(Op::Chmod)) ops->chmod = Chmod;
  if (s.Has(Op::Chown)) ops->chown = Chown;
  if (s.Has(Op::Utimens)) ops->utimens = Utimens;
  if (s.Has(Op::Setxattr)) ops->setxattr = Setxattr;
  if (s.Has(Op::Getxattr)) ops->getxattr = Getxattr;
  if (s.Has(Op::Listxattr)) ops->listxattr = Listxattr;
  if (s.Has(Op::Removexattr)) ops->removexattr = Removexattr;
  if (s.Has(Op::Access)) ops->access = Access;
}

}  // namespace objmount
