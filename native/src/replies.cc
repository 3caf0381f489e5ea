// What follows each JS answer to a low-level operation (Session::Continue): a reply to the
// kernel, or the next JS operation of the same request. The order of JS calls is the one
// libfuse's high-level API used, so the JS side sees the same calls as before: a new entry is
// followed by a getattr of it, a setattr is chmod, chown, truncate, utimens (each if asked) and
// a getattr. The handlers that start requests are in ll_ops.cc.
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>

#include <string>

#include "replies.h"
#include "session.h"

namespace objmount {

namespace {

// The inode number readdir gives when it does not know one (the kernel then looks the entry up).
constexpr ino_t kUnknownIno = 0xffffffff;

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

bool IsDot(const std::string& name) { return name == "." || name == ".."; }

// Without a JS open, opening succeeds with handle 0 (as libfuse's high-level API did).
void RunOpen(Session* s, Request* r) {
  if (s->Has(Op::Open)) return s->Run(r, Op::Open);
  r->outFh = 0;
  s->Continue(r, 0);
}

}  // namespace

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

}  // namespace objmount
