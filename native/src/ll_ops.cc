// libfuse's low-level operations, run on the JS thread inside fuse_session_process_buf. A
// handler turns inode numbers into paths (nodes.h) and starts the JS operation; what follows
// each JS answer (Session::Continue: a reply, or the next JS operation of the same request) is
// in replies.cc. The order of JS calls is the one libfuse's high-level API used, so the
// JS side sees the same calls as before: a new entry is followed by a getattr of it, a setattr
// is chmod, chown, truncate, utimens (each if asked) and a getattr.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "replies.h"
#include "session.h"

namespace objmount {

namespace {

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
// round trip to JS. A get answers ENOSYS: the kernel then answers every later get "not supported"
// itself, with no request at all (`ls -l` asks two attributes of every entry it lists). A list
// stays an empty answer (ENOSYS would make it fail, and `rsync -X` report each file).
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
    fuse_reply_err(req, ENOSYS);
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
