// One FUSE request on its way through JavaScript.
//
// A low-level handler (ll_ops.cc) records what the kernel asked (`kind`, the inode numbers and
// names) and starts the first JS operation (`op`). Each JS answer comes back through the session
// (Settle), which either starts the next JS operation of the same request (a mkdir is followed by
// a getattr of the new directory, a setattr by chmod, chown, truncate, utimens and getattr) or
// replies to the kernel. Everything here happens on the JS thread; the request is freed once the
// kernel has its reply (or the session stopped, answering ENOTCONN).
#pragma once

#include <fuse_lowlevel.h>
#include <node_api.h>
#include <sys/stat.h>
#include <sys/statvfs.h>

#include <string>
#include <vector>

namespace objmount {

// The JS operations, by the names JS gives them.
enum class Op {
  Init, Statfs, Getattr, Fgetattr, Readdir, Opendir, Releasedir, Mkdir, Rmdir, Create, Open,
  Read, Write, Flush, Fsync, Fsyncdir, Release, Truncate, Ftruncate, Unlink, Rename, Symlink,
  Readlink, Link, Mknod, Chmod, Chown, Utimens, Setxattr, Getxattr, Listxattr, Removexattr,
  Access, Readdirplus, Count
};

// The JS name of each operation, in Op order.
extern const char* const kOpNames[static_cast<int>(Op::Count)];

// What the kernel asked, which decides the reply.
enum class Kind {
  Lookup, Getattr, Setattr, Readlink, Mknod, Mkdir, Symlink, Link, Unlink, Rmdir, Rename, Open,
  Read, Write, Flush, Release, Fsync, Opendir, Readdir, Releasedir, Fsyncdir, Statfs, Setxattr,
  Getxattr, Listxattr, Removexattr, Access, Create, Readdirplus,
  Detached,  // no kernel request waits: init, or the release of a handle the kernel never got
};

// A directory handle: the names JS listed, served in pages (fetched again when a reader starts
// over at offset 0).
struct DirHandle {
  uint64_t fh = 0;  // JS's own handle, from its opendir
  bool listed = false;
  std::vector<std::string> names;
  // readdirplus: the attributes JS gave with each name (`known` false where it gave none), and
  // when it gave them (monotonic seconds).
  std::vector<struct stat> attrs;
  std::vector<bool> known;
  double listedAt = 0;
};

// A block lent to JS as an external Buffer for one operation: a read's, which the op fills, or
// a write's, holding the data as the kernel sent it. Once the op has answered successfully (a
// read's bytes are then with the kernel), the Buffer is detached, so JS can no longer reach the
// memory, and the block goes back to the pool at once: no copy, and no garbage for V8. Otherwise
// (an error, or the session stopped while the op may still hold the Buffer, or a file call on
// libuv's thread pool may still be using the memory) the block goes back once both the request
// is settled and the Buffer is garbage-collected.
struct LentBlock {
  char* mem;
  bool settled = false;     // answered, or abandoned
  bool returned = false;    // back in the pool already
  bool bufferGone = false;  // the JS Buffer was collected
  // Call when one of the conditions becomes true; frees what nobody needs any more.
  static void Release(LentBlock* block);
};

struct Request {
  Request(fuse_req_t r, Kind k) : req(r), kind(k) {}

  fuse_req_t req;  // null for Kind::Detached
  Kind kind;
  Op op = Op::Count;  // the JS operation running now
  int step = 0;       // how far a request of several JS operations has come

  // What the kernel named.
  fuse_ino_t ino = 0;     // the inode operated on (for entry-making requests: none yet)
  fuse_ino_t parent = 0;  // the directory of `name`
  std::string name;
  fuse_ino_t newParent = 0;  // rename's target directory
  std::string newName;

  // The JS operation's inputs (which are set depends on `op`).
  std::string path;
  std::string path2;  // rename/link target, symlink path, xattr name
  uint64_t fh = 0;
  bool withHandle = false;  // a handle came with the request (fgetattr, ftruncate)
  int64_t offset = 0;       // read/write position, truncate size
  size_t size = 0;          // read/write length, output buffer size (xattrs), readdir reply size
  int flags = 0;
  mode_t mode = 0;
  uid_t uid = 0;
  gid_t gid = 0;
  dev_t dev = 0;
  bool datasync = false;
  const char* input = nullptr;  // write data (in the receive block, lent to JS), xattr value
  struct timespec times[2] = {};
  int toSet = 0;                // setattr: which attributes (FUSE_SET_ATTR_*)
  struct stat attrIn = {};      // setattr: their new values
  struct fuse_file_info fi = {};
  bool flushFirst = false;      // release: flush before releasing
  DirHandle* dir = nullptr;

  // What the JS operations answered.
  struct stat attrOut = {};
  struct statvfs statvfsOut = {};
  uint64_t outFh = 0;
  std::string text;  // readlink's target, an xattr value, the xattr name list

  // A read's or a write's block, lent to JS as a Buffer (no copy).
  napi_ref lentBuffer = nullptr;
  LentBlock* lent = nullptr;

  // The process the kernel made the request for: a read's (the one whose read caused it, also for
  // the kernel's read-ahead), for AbandonReads; a flush's, the process that closed a descriptor
  // (0: not known, as in a release's flush).
  pid_t pid = 0;

  // INTERRUPT (session.cc): the kernel was answered EINTR while JS still ran the op, whose late
  // answer then only tidies up (a handle opened meanwhile is released).
  uint32_t jsId = 0;              // the id of the JS operation running now
  bool interruptWatched = false;  // fuse_req_interrupt_func was called for it
  bool interrupted = false;       // the kernel asked to interrupt it

  // An open for writing or a truncate of this inode: page stores are refused until it ends (or,
  // for an open that succeeds, until its handle is released).
  fuse_ino_t blocksStores = 0;
};

// Requests the kernel may interrupt: they only read, so answering EINTR while JS goes on costs
// nothing but the tidying up of an open's handle. Requests that change the store (create, write,
// rename, flush...) run to their answer, within the store's deadlines.
inline bool Interruptible(Kind kind) {
  switch (kind) {
    case Kind::Lookup:
    case Kind::Getattr:
    case Kind::Readlink:
    case Kind::Open:
    case Kind::Read:
    case Kind::Readdir:
    case Kind::Statfs:
    case Kind::Getxattr:
    case Kind::Listxattr:
    case Kind::Access:
      return true;
    default:
      return false;
  }
}

}  // namespace objmount
