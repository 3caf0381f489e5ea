// libfuse's low-level operations, run on the JS thread inside fuse_session_process_buf, and what
// follows each JS answer (Session::Continue). A handler turns inode numbers into paths (nodes.h)
// and starts the JS operation; Continue replies to the kernel, or starts the next JS operation
// of the same request. The order of JS calls is the one libfuse's high-level API used, so the
// JS side sees the same calls as before: a new entry is followed by a getattr of it, a setattr
// is chmod, chown, truncate, utimens (each if asked) and a getattr.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "session.h"

namespace objmount {

namespace {

// The inode number readdir gives when it does not know one (the kernel then looks the entry up).
constexpr ino_t kUnknownIno = 0xffffffff;

Session* S(fuse_req_t req) { return static_cast<Session*>(fuse_req_userdata(req)); }

// Sets r->path to the path of `ino`; answers ENOENT (and returns false) for an unknown inode.
bool AtInode(Session* s, Request* r, fuse_ino_t ino) {
  r->ino = ino;
  if (s->nodes().Path(ino, &r->path)) return true;
  s->Fail(r, ENOENT);
  return false;
}

// A request that makes a node records who asks (r->uid, r->gid): the node is theirs.
void ByCaller(fuse_req_t req, Request* r) {
  const struct fuse_ctx* ctx = fuse_req_ctx(req);
  r->uid = ctx->uid;
  r->gid = ctx->gid;
}

// Sets r->parent, r->name and r->path to `name` in directory `parent`.
bool AtEntry(Session* s, Request* r, fuse_ino_t parent, const char* name) {
  r->parent = parent;
  r->name = name;
  if (s->nodes().ChildPath(parent, r->name, &r->path)) return true;
  s->Fail(r, ENOENT);
  return false;
}

bool SameTime(const struct timespec& a, const struct timespec& b) { return a.tv_sec == b.tv_sec && a.tv_nsec == b.tv_nsec; }

// auto_cache: a file's pages stay cached across opens while its mtime and size stay the same.
void UpdateStat(Session* s, Node* node, const struct stat& st) {
  if (node == nullptr || !s->options().autoCache) return;
  if (node->cacheValid && (!SameTime(node->mtime, st.st_mtim) || node->size != st.st_size)) node->cacheValid = false;
  node->mtime = st.st_mtim;
  node->size = st.st_size;
  node->statUpdated = s->now();
}

// The release of a handle the kernel never got (its open or create reply failed).
void ReleaseOrphan(Session* s, const std::string& path, uint64_t fh) {
  auto* r = new Request(nullptr, Kind::Detached);
  r->path = path;
  r->fh = fh;
  s->Run(r, Op::Release);
}

struct fuse_entry_param Entry(Session* s, Node* node, const struct stat& attr) {
  struct fuse_entry_param e = {};
  e.ino = node->ino;
  e.attr = attr;
  e.attr.st_ino = node->ino;
  e.attr_timeout = s->options().attrTimeout;
  e.entry_timeout = s->options().entryTimeout;
  UpdateStat(s, node, e.attr);
  return e;
}

// The new entry r->name in r->parent, with the attributes JS gave (r->attrOut).
void ReplyEntry(Session* s, Request* r) {
  Node* node = s->nodes().Remember(r->parent, r->name);
  if (node == nullptr) return s->Fail(r, ENOENT);
  struct fuse_entry_param e = Entry(s, node, r->attrOut);
  if (r->kind == Kind::Create) {
    if (fuse_reply_create(r->req, &e, &r->fi) != 0) {
      s->nodes().Forget(e.ino, 1);
      ReleaseOrphan(s, r->path, r->fi.fh);
    } else {
      node->openHandles.push_back(r->fi.fh);
      s->HandleOpened(r->fi.fh, node->ino, (r->flags & O_ACCMODE) != O_RDONLY);
    }
  } else if (fuse_reply_entry(r->req, &e) != 0) {
    s->nodes().Forget(e.ino, 1);  // the kernel did not get it (the request was interrupted)
  }
  r->req = nullptr;
  s->Done(r);
}

void ReplyAttr(Session* s, Request* r) {
  r->attrOut.st_ino = r->ino;
  UpdateStat(s, s->nodes().Get(r->ino), r->attrOut);
  fuse_reply_attr(r->req, &r->attrOut, s->options().attrTimeout);
  r->req = nullptr;
  s->Done(r);
}

void ReplyDirectory(Session* s, Request* r) {
  const std::vector<std::string>& names = r->dir->names;
  std::string buf(r->size, '\0');
  size_t used = 0;
  struct stat st = {};
  st.st_ino = kUnknownIno;
  for (size_t i = static_cast<size_t>(r->offset); i < names.size(); i++) {
    size_t room = buf.size() - used;
    size_t n = fuse_add_direntry(r->req, &buf[used], room, names[i].c_str(), &st, static_cast<off_t>(i + 1));
    if (n > room) break;
    used += n;
  }
  fuse_reply_buf(r->req, buf.data(), used);
  r->req = nullptr;
  s->Done(r);
}

bool IsDot(const std::string& name) { return name == "." || name == ".."; }

// A page of readdirplus: each name JS gave attributes for is a full entry, which makes the kernel
// hold the node as a lookup does (its lookup count is raised here as the kernel raises its own,
// and FORGET lowers it later); the others go with inode number 0, for which the kernel makes no
// entry and looks the name up when it needs it. Attributes older than the attribute timeout
// (a reader that paged slowly) are not handed out, nor any with a timeout of 0 (they would be
// stale at once), nor those of "." and "..", which the kernel never links.
void ReplyDirectoryPlus(Session* s, Request* r) {
  DirHandle* dir = r->dir;
  const std::vector<std::string>& names = dir->names;
  const SessionOptions& o = s->options();
  Node* parent = s->nodes().Get(r->ino);
  bool linkable = parent != nullptr && !parent->detached && o.attrTimeout > 0 && o.entryTimeout > 0 &&
                  s->now() - dir->listedAt <= o.attrTimeout && dir->known.size() == names.size();
  std::string buf(r->size, '\0');
  size_t used = 0;
  std::vector<fuse_ino_t> linked;
  for (size_t i = static_cast<size_t>(r->offset); i < names.size(); i++) {
    const std::string& name = names[i];
    size_t room = buf.size() - used;
    if (fuse_add_direntry_plus(r->req, nullptr, 0, name.c_str(), nullptr, 0) > room) break;
    struct fuse_entry_param e = {};
    e.attr.st_ino = kUnknownIno;
    if (linkable && dir->known[i] && !IsDot(name)) {
      if (Node* node = s->nodes().Remember(r->ino, name)) {
        e = Entry(s, node, dir->attrs[i]);
        linked.push_back(node->ino);
      }
    }
    used += fuse_add_direntry_plus(r->req, &buf[used], room, name.c_str(), &e, static_cast<off_t>(i + 1));
  }
  if (fuse_reply_buf(r->req, buf.data(), used) != 0) {
    for (fuse_ino_t ino : linked) s->nodes().Forget(ino, 1);  // the kernel did not get them
  }
  r->req = nullptr;
  s->Done(r);
}

// The JS value of a time to set: UTIME_NOW and UTIME_OMIT are passed on (js_calls.cc converts).
void SetattrNext(Session* s, Request* r) {
  const struct stat& a = r->attrIn;
  for (;;) {
    switch (r->step++) {
      case 0:
        if (r->toSet & FUSE_SET_ATTR_MODE) {
          r->mode = a.st_mode;
          return s->Run(r, Op::Chmod);
        }
        break;
      case 1:
        if (r->toSet & (FUSE_SET_ATTR_UID | FUSE_SET_ATTR_GID)) {
          r->uid = (r->toSet & FUSE_SET_ATTR_UID) ? a.st_uid : static_cast<uid_t>(-1);
          r->gid = (r->toSet & FUSE_SET_ATTR_GID) ? a.st_gid : static_cast<gid_t>(-1);
          return s->Run(r, Op::Chown);
        }
        break;
      case 2:
        if (r->toSet & FUSE_SET_ATTR_SIZE) {
          r->offset = a.st_size;
          return s->Run(r, r->withHandle && s->Has(Op::Ftruncate) ? Op::Ftruncate : Op::Truncate);
        }
        break;
      case 3:
        if (r->toSet & (FUSE_SET_ATTR_ATIME | FUSE_SET_ATTR_MTIME)) {
          r->times[0].tv_sec = r->times[1].tv_sec = 0;
          r->times[0].tv_nsec = r->times[1].tv_nsec = UTIME_OMIT;
          if (r->toSet & FUSE_SET_ATTR_ATIME_NOW) {
            r->times[0].tv_nsec = UTIME_NOW;
          } else if (r->toSet & FUSE_SET_ATTR_ATIME) {
            r->times[0] = a.st_atim;
          }
          if (r->toSet & FUSE_SET_ATTR_MTIME_NOW) {
            r->times[1].tv_nsec = UTIME_NOW;
          } else if (r->toSet & FUSE_SET_ATTR_MTIME) {
            r->times[1] = a.st_mtim;
          }
          return s->Run(r, Op::Utimens);
        }
        break;
      case 4:
        return s->Run(r, r->withHandle && s->Has(Op::Fgetattr) ? Op::Fgetattr : Op::Getattr);
      default:
        return ReplyAttr(s, r);
    }
  }
}

// Without a JS open, opening succeeds with handle 0 (as libfuse's high-level API did).
void RunOpen(Session* s, Request* r) {
  if (s->Has(Op::Open)) return s->Run(r, Op::Open);
  r->outFh = 0;
  s->Continue(r, 0);
}

void StartOpen(Session* s, Request* r) {
  Node* node = s->nodes().Get(r->ino);
  // auto_cache: attributes older than the attribute timeout are fetched again before deciding.
  if (s->options().autoCache && node != nullptr && node->cacheValid && s->now() - node->statUpdated > s->options().attrTimeout) {
    r->step = 0;
    return s->Run(r, Op::Getattr);
  }
  r->step = 1;
  RunOpen(s, r);
}

// ---- the handlers ----

void Init(void* userdata, struct fuse_conn_info* conn) {
  auto* s = static_cast<Session*>(userdata);
  const SessionOptions& o = s->options();
  // Bigger writes mean fewer round trips; libfuse derives max_pages from max_write.
  conn->max_write = o.maxWrite;
  conn->max_read = o.maxRead;
  // Requests are read into memory that JS then owns (block_pool.h), never spliced.
  conn->want &= ~(FUSE_CAP_SPLICE_READ | FUSE_CAP_SPLICE_WRITE | FUSE_CAP_SPLICE_MOVE);
  if (o.writebackCache && (conn->capable & FUSE_CAP_WRITEBACK_CACHE)) conn->want |= FUSE_CAP_WRITEBACK_CACHE;
  // Directories are read with their entries' attributes (readdirplus), every page of them:
  // `ls -l` and `find` read a whole directory before they stat its entries, so the kernel's
  // "auto" mode, which asks for attributes with the first page only unless entries were looked
  // up in between, would leave all but the first page to a LOOKUP per entry.
  if (s->Has(Op::Readdirplus) && (conn->capable & FUSE_CAP_READDIRPLUS)) {
    conn->want |= FUSE_CAP_READDIRPLUS;
    conn->want &= ~FUSE_CAP_READDIRPLUS_AUTO;
  } else {
    conn->want &= ~(FUSE_CAP_READDIRPLUS | FUSE_CAP_READDIRPLUS_AUTO);
  }
  s->Initialized();
}

void Lookup(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Lookup);
  if (AtEntry(s, r, parent, name)) s->Run(r, Op::Getattr);
}

void Forget(fuse_req_t req, fuse_ino_t ino, uint64_t nlookup) {
  S(req)->nodes().Forget(ino, nlookup);
  fuse_reply_none(req);
}

void ForgetMulti(fuse_req_t req, size_t count, struct fuse_forget_data* forgets) {
  Session* s = S(req);
  for (size_t i = 0; i < count; i++) s->nodes().Forget(forgets[i].ino, forgets[i].nlookup);
  fuse_reply_none(req);
}

void Getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Getattr);
  if (!AtInode(s, r, ino)) return;
  if (fi != nullptr && s->Has(Op::Fgetattr)) {
    r->fh = fi->fh;
    r->withHandle = true;
    return s->Run(r, Op::Fgetattr);
  }
  // An unlinked file that is still open has no path left to ask about: ask through its handle.
  Node* node = s->nodes().Get(ino);
  if (node != nullptr && node->detached && !node->openHandles.empty() && s->Has(Op::Fgetattr)) {
    r->fh = node->openHandles.front();
    r->withHandle = true;
    return s->Run(r, Op::Fgetattr);
  }
  s->Run(r, Op::Getattr);
}

void Setattr(fuse_req_t req, fuse_ino_t ino, struct stat* attr, int toSet, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Setattr);
  if (!AtInode(s, r, ino)) return;
  r->attrIn = *attr;
  r->toSet = toSet;
  if (fi != nullptr) {
    r->fh = fi->fh;
    r->withHandle = true;
  }
  // A truncate changes the pages: no page store may overtake it (page_store.cc).
  if (toSet & FUSE_SET_ATTR_SIZE) {
    s->BlockStores(ino);
    r->blocksStores = ino;
  }
  s->AfterStores(ino, [s, r] { SetattrNext(s, r); });
}

void Readlink(fuse_req_t req, fuse_ino_t ino) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Readlink);
  if (AtInode(s, r, ino)) s->Run(r, Op::Readlink);
}

void Mknod(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, dev_t rdev) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Mknod);
  if (!AtEntry(s, r, parent, name)) return;
  r->mode = mode;
  r->dev = rdev;  // the kernel's 32-bit encoding of the device number (fuse_mknod_in)
  ByCaller(req, r);
  s->Run(r, Op::Mknod);
}

void Mkdir(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Mkdir);
  if (!AtEntry(s, r, parent, name)) return;
  r->mode = mode;
  ByCaller(req, r);
  s->Run(r, Op::Mkdir);
}

void Unlink(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Unlink);
  if (AtEntry(s, r, parent, name)) s->Run(r, Op::Unlink);
}

void Rmdir(fuse_req_t req, fuse_ino_t parent, const char* name) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Rmdir);
  if (AtEntry(s, r, parent, name)) s->Run(r, Op::Rmdir);
}

void Symlink(fuse_req_t req, const char* target, fuse_ino_t parent, const char* name) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Symlink);
  if (!AtEntry(s, r, parent, name)) return;
  // JS gets (target, path).
  r->path2 = r->path;
  r->path = target;
  ByCaller(req, r);
  s->Run(r, Op::Symlink);
}

void Rename(fuse_req_t req, fuse_ino_t parent, const char* name, fuse_ino_t newParent, const char* newName, unsigned int flags) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Rename);
  // RENAME_NOREPLACE/EXCHANGE cannot be done atomically on a store; callers fall back on EINVAL.
  if (flags != 0) return s->Fail(r, EINVAL);
  if (!AtEntry(s, r, parent, name)) return;
  r->newParent = newParent;
  r->newName = newName;
  if (!s->nodes().ChildPath(newParent, r->newName, &r->path2)) return s->Fail(r, ENOENT);
  s->Run(r, Op::Rename);
}

void Link(fuse_req_t req, fuse_ino_t ino, fuse_ino_t newParent, const char* newName) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Link);
  std::string from;
  if (!s->nodes().Path(ino, &from)) return s->Fail(r, ENOENT);
  if (!AtEntry(s, r, newParent, newName)) return;
  r->path2 = r->path;  // JS gets (from, to)
  r->path = from;
  s->Run(r, Op::Link);
}

void Open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Open);
  if (!AtInode(s, r, ino)) return;
  r->fi = *fi;
  r->flags = fi->flags;
  // No page store may overtake an open (page_store.cc); none starts while one for writing is on
  // its way.
  if ((fi->flags & O_ACCMODE) != O_RDONLY) {
    s->BlockStores(ino);
    r->blocksStores = ino;
  }
  s->AfterStores(ino, [s, r] { StartOpen(s, r); });
}

void Read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Read);
  if (!AtInode(s, r, ino)) return;
  r->fh = fi->fh;
  r->size = size;
  r->offset = offset;
  r->pid = fuse_req_ctx(req)->pid;
  s->Run(r, Op::Read);
}

void Write(fuse_req_t req, fuse_ino_t ino, const char* buf, size_t size, off_t offset, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Write);
  if (!AtInode(s, r, ino)) return;
  r->fh = fi->fh;
  r->input = buf;  // in the block the request was read into, which JS then takes (no copy)
  r->size = size;
  r->offset = offset;
  s->Run(r, Op::Write);
}

void Flush(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Flush);
  if (!AtInode(s, r, ino)) return;
  r->fh = fi->fh;
  s->AbandonReads(fi->fh, fuse_req_ctx(req)->pid);
  r->pid = fuse_req_ctx(req)->pid;
  s->Run(r, Op::Flush);
}

void Release(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Release);
  s->HandleReleased(fi->fh, ino, (fi->flags & O_ACCMODE) != O_RDONLY);
  if (!AtInode(s, r, ino)) return;
  r->fh = fi->fh;
  if (Node* node = s->nodes().Get(ino)) {
    auto& open = node->openHandles;
    for (auto it = open.begin(); it != open.end(); ++it) {
      if (*it == fi->fh) {
        open.erase(it);
        break;
      }
    }
  }
  if (fi->flush && s->Has(Op::Flush)) {
    r->step = 0;
    return s->Run(r, Op::Flush);
  }
  r->step = 1;
  s->Run(r, Op::Release);
}

void Fsync(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Fsync);
  if (!AtInode(s, r, ino)) return;
  r->fh = fi->fh;
  r->datasync = datasync != 0;
  s->Run(r, Op::Fsync);
}

void Opendir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Opendir);
  if (!AtInode(s, r, ino)) return;
  r->fi = *fi;
  r->flags = fi->flags;
  r->dir = new DirHandle();
  if (s->Has(Op::Opendir)) return s->Run(r, Op::Opendir);
  s->Continue(r, 0);
}

// Both directory reads: the first page (or a rewind) asks JS for the listing, which the handle
// keeps; later pages are cut from it.
void ReadDirectory(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info* fi, bool plus) {
  Session* s = S(req);
  auto* r = new Request(req, plus ? Kind::Readdirplus : Kind::Readdir);
  if (!AtInode(s, r, ino)) return;
  r->dir = reinterpret_cast<DirHandle*>(fi->fh);
  r->size = size;
  r->offset = offset;
  if (offset == 0 || !r->dir->listed) {
    r->dir->names.clear();
    r->dir->attrs.clear();
    r->dir->known.clear();
    return s->Run(r, plus ? Op::Readdirplus : Op::Readdir);
  }
  if (plus) {
    ReplyDirectoryPlus(s, r);
  } else {
    ReplyDirectory(s, r);
  }
}

void Readdir(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info* fi) {
  ReadDirectory(req, ino, size, offset, fi, false);
}

void Readdirplus(fuse_req_t req, fuse_ino_t ino, size_t size, off_t offset, struct fuse_file_info* fi) {
  ReadDirectory(req, ino, size, offset, fi, true);
}

void Releasedir(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Releasedir);
  r->dir = reinterpret_cast<DirHandle*>(fi->fh);
  r->fh = r->dir->fh;
  if (!s->Has(Op::Releasedir) || !s->nodes().Path(ino, &r->path)) return s->Continue(r, 0);
  s->Run(r, Op::Releasedir);
}

void Fsyncdir(fuse_req_t req, fuse_ino_t ino, int datasync, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Fsyncdir);
  if (!AtInode(s, r, ino)) return;
  r->fh = reinterpret_cast<DirHandle*>(fi->fh)->fh;
  r->datasync = datasync != 0;
  s->Run(r, Op::Fsyncdir);
}

void Statfs(fuse_req_t req, fuse_ino_t ino) {
  Session* s = S(req);
  if (!s->Has(Op::Statfs)) {  // as libfuse's high-level API answers without one
    struct statvfs st = {};
    st.f_namemax = 255;
    st.f_bsize = 512;
    fuse_reply_statfs(req, &st);
    return;
  }
  auto* r = new Request(req, Kind::Statfs);
  if (AtInode(s, r, ino)) s->Run(r, Op::Statfs);
}

// Without JS xattr ops (objmount stores no extended attributes) the four answer here, with no
// round trip to JS: `ls -l` asks two attributes of every entry it lists.
void Setxattr(fuse_req_t req, fuse_ino_t ino, const char* name, const char* value, size_t size, int flags) {
  Session* s = S(req);
  if (!s->Has(Op::Setxattr)) {
    fuse_reply_err(req, ENOTSUP);
    return;
  }
  auto* r = new Request(req, Kind::Setxattr);
  if (!AtInode(s, r, ino)) return;
  r->path2 = name;
  r->input = value;  // copied into JS when the op starts
  r->size = size;
  r->flags = flags;
  s->Run(r, Op::Setxattr);
}

void Getxattr(fuse_req_t req, fuse_ino_t ino, const char* name, size_t size) {
  Session* s = S(req);
  if (!s->Has(Op::Getxattr)) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  auto* r = new Request(req, Kind::Getxattr);
  if (!AtInode(s, r, ino)) return;
  r->path2 = name;
  r->size = size;
  s->Run(r, Op::Getxattr);
}

void Listxattr(fuse_req_t req, fuse_ino_t ino, size_t size) {
  Session* s = S(req);
  if (!s->Has(Op::Listxattr)) {
    if (size == 0) {
      fuse_reply_xattr(req, 0);
    } else {
      fuse_reply_buf(req, nullptr, 0);
    }
    return;
  }
  auto* r = new Request(req, Kind::Listxattr);
  if (!AtInode(s, r, ino)) return;
  r->size = size;
  s->Run(r, Op::Listxattr);
}

void Removexattr(fuse_req_t req, fuse_ino_t ino, const char* name) {
  Session* s = S(req);
  if (!s->Has(Op::Removexattr)) {
    fuse_reply_err(req, ENODATA);
    return;
  }
  auto* r = new Request(req, Kind::Removexattr);
  if (!AtInode(s, r, ino)) return;
  r->path2 = name;
  s->Run(r, Op::Removexattr);
}

void Access(fuse_req_t req, fuse_ino_t ino, int mask) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Access);
  if (!AtInode(s, r, ino)) return;
  r->flags = mask;
  s->Run(r, Op::Access);
}

void Create(fuse_req_t req, fuse_ino_t parent, const char* name, mode_t mode, struct fuse_file_info* fi) {
  Session* s = S(req);
  auto* r = new Request(req, Kind::Create);
  if (!AtEntry(s, r, parent, name)) return;
  r->fi = *fi;
  r->mode = mode;
  r->flags = fi->flags;
  ByCaller(req, r);
  s->Run(r, Op::Create);
}

}  // namespace

void Session::Fail(Request* r, int error) {
  if (r->req != nullptr) fuse_reply_err(r->req, error);
  r->req = nullptr;
  Done(r);
}

void Session::Done(Request* r) {
  if (r->req != nullptr) fuse_reply_err(r->req, 0);
  Free(r);
}

void Session::Free(Request* r) {
  if (r->blocksStores != 0) UnblockStores(r->blocksStores);
  delete r;
}

void Session::Continue(Request* r, int code) {
  if (r->kind == Kind::Detached) return Done(r);
  if (r->kind == Kind::Read) {
    if (code < 0) {
      ReleaseLent(r, false);
      return Fail(r, -code);
    }
    fuse_reply_buf(r->req, r->lent->mem, static_cast<size_t>(code));
    r->req = nullptr;
    ReleaseLent(r, true);
    return Done(r);
  }
  bool failed = code < 0;
  switch (r->kind) {
    case Kind::Lookup:
      if (failed) {
        if (code == -ENOENT && options_.negativeTimeout > 0) {
          struct fuse_entry_param e = {};  // ino 0: the kernel remembers that the name is absent
          e.entry_timeout = options_.negativeTimeout;
          fuse_reply_entry(r->req, &e);
          r->req = nullptr;
          return Done(r);
        }
        return Fail(r, -code);
      }
      return ReplyEntry(this, r);
    case Kind::Getattr:
      return failed ? Fail(r, -code) : ReplyAttr(this, r);
    case Kind::Setattr:
      return failed ? Fail(r, -code) : SetattrNext(this, r);
    case Kind::Mknod:
    case Kind::Mkdir:
    case Kind::Symlink:
    case Kind::Link:
      if (failed) return Fail(r, -code);
      if (r->step++ == 0) {
        if (r->kind == Kind::Symlink || r->kind == Kind::Link) r->path = r->path2;  // the new entry
        return Run(r, Op::Getattr);
      }
      return ReplyEntry(this, r);
    case Kind::Create:
      if (r->step++ == 0) {
        if (failed) return Fail(r, -code);
        r->fi.fh = r->outFh;
        return Run(r, Op::Getattr);
      }
      if (failed) {
        ReleaseOrphan(this, r->path, r->fi.fh);
        return Fail(r, -code);
      }
      return ReplyEntry(this, r);
    case Kind::Open: {
      Node* node = nodes_.Get(r->ino);
      if (r->step++ == 0) {  // the attributes auto_cache asked for
        if (node != nullptr) {
          if (failed) {
            node->cacheValid = false;
          } else {
            UpdateStat(this, node, r->attrOut);
          }
        }
        return RunOpen(this, r);
      }
      if (failed) return Fail(r, -code);
      r->fi.fh = r->outFh;
      if (options_.autoCache && node != nullptr) {
        r->fi.keep_cache = node->cacheValid ? 1 : 0;
        node->cacheValid = true;
      }
      if (fuse_reply_open(r->req, &r->fi) != 0) {
        ReleaseOrphan(this, r->path, r->fi.fh);
      } else {
        if (node != nullptr) node->openHandles.push_back(r->fi.fh);
        HandleOpened(r->fi.fh, r->ino, (r->flags & O_ACCMODE) != O_RDONLY);
      }
      r->req = nullptr;
      return Done(r);
    }
    case Kind::Write:
      ReleaseLent(r, !failed);
      if (failed) return Fail(r, -code);
      fuse_reply_write(r->req, static_cast<size_t>(code));
      r->req = nullptr;
      return Done(r);
    case Kind::Unlink:
    case Kind::Rmdir:
      if (!failed) nodes_.Detach(r->parent, r->name);
      return Fail(r, failed ? -code : 0);
    case Kind::Rename:
      if (!failed) nodes_.Move(r->parent, r->name, r->newParent, r->newName);
      return Fail(r, failed ? -code : 0);
    case Kind::Release:
      if (r->step++ == 0) return Run(r, Op::Release);  // after the flush, whatever it answered
      return Done(r);  // the kernel does not wait for a release's answer
    case Kind::Opendir:
      if (failed) {
        delete r->dir;
        return Fail(r, -code);
      }
      r->dir->fh = r->outFh;
      r->fi.fh = reinterpret_cast<uintptr_t>(r->dir);
      if (fuse_reply_open(r->req, &r->fi) != 0) delete r->dir;
      r->req = nullptr;
      return Done(r);
    case Kind::Readdir:
      if (failed) return Fail(r, -code);
      r->dir->listed = true;
      return ReplyDirectory(this, r);
    case Kind::Readdirplus:
      if (failed) return Fail(r, -code);
      r->dir->listed = true;
      r->dir->listedAt = now();
      return ReplyDirectoryPlus(this, r);
    case Kind::Releasedir:
      delete r->dir;
      return Done(r);
    case Kind::Statfs:
      if (failed) return Fail(r, -code);
      fuse_reply_statfs(r->req, &r->statvfsOut);
      r->req = nullptr;
      return Done(r);
    case Kind::Readlink:
      if (failed) return Fail(r, -code);
      fuse_reply_readlink(r->req, r->text.c_str());
      r->req = nullptr;
      return Done(r);
    case Kind::Getxattr:
    case Kind::Listxattr:
      if (failed) return Fail(r, -code);
      if (r->size == 0) {
        fuse_reply_xattr(r->req, r->text.size());
      } else if (r->text.size() > r->size) {
        return Fail(r, ERANGE);
      } else {
        fuse_reply_buf(r->req, r->text.data(), r->text.size());
      }
      r->req = nullptr;
      return Done(r);
    default:  // flush, fsync, fsyncdir, access, setxattr, removexattr
      return Fail(r, failed ? -code : 0);
  }
}

void FillOperations(const Session& s, struct fuse_lowlevel_ops* ops) {
  ops->init = Init;
  ops->lookup = Lookup;
  ops->forget = Forget;
  ops->forget_multi = ForgetMulti;
  ops->getattr = Getattr;
  ops->setattr = Setattr;
  ops->readlink = Readlink;
  ops->mknod = Mknod;
  ops->mkdir = Mkdir;
  ops->unlink = Unlink;
  ops->rmdir = Rmdir;
  ops->symlink = Symlink;
  ops->rename = Rename;
  ops->link = Link;
  ops->open = Open;
  ops->read = Read;
  ops->write = Write;
  ops->flush = Flush;
  ops->release = Release;
  ops->fsync = Fsync;
  ops->opendir = Opendir;
  ops->readdir = Readdir;
  if (s.Has(Op::Readdirplus)) ops->readdirplus = Readdirplus;
  ops->releasedir = Releasedir;
  ops->fsyncdir = Fsyncdir;
  ops->statfs = Statfs;
  ops->setxattr = Setxattr;
  ops->getxattr = Getxattr;
  ops->listxattr = Listxattr;
  ops->removexattr = Removexattr;
  if (s.Has(Op::Access)) ops->access = Access;  // without it, the kernel checks by mode bits
  if (s.Has(Op::Create)) ops->create = Create;  // without it, the kernel uses mknod and open
}

}  // namespace objmount
