// The JS side of a request: calling the JS operation and turning its answer into the request's
// outputs, for Session::Continue (ll_ops.cc) to reply with. Runs only on the JS thread.
//
// Each call gets an id; the JS wrapper (src/fuse/binding.ts) answers through reply(id, code,
// result). A code that is not a number, a result of the wrong type, or an operation that throws
// becomes EIO; a second reply, or one arriving after stop() answered the request, is ignored.
#include <errno.h>
#include <string.h>
#include <time.h>

#include <cmath>
#include <string>

#include "block_pool.h"
#include "session.h"

namespace objmount {

const char* const kOpNames[static_cast<int>(Op::Count)] = {
    "init",      "statfs",   "getattr",  "fgetattr",    "readdir", "opendir",  "releasedir", "mkdir",   "rmdir",
    "create",    "open",     "read",     "write",       "flush",   "fsync",    "fsyncdir",   "release", "truncate",
    "ftruncate", "unlink",   "rename",   "symlink",     "readlink", "link",    "mknod",      "chmod",   "chown",
    "utimens",   "setxattr", "getxattr", "listxattr",   "removexattr", "access", "readdirplus"};

void LentBlock::Release(LentBlock* block) {
  if (!block->settled || !block->bufferGone) return;
  if (!block->returned) FreeBlock(block->mem);
  delete block;
}

namespace {

napi_value Number(napi_env env, double value) {
  napi_value v;
  napi_create_double(env, value, &v);
  return v;
}

napi_value String(napi_env env, const std::string& s) {
  napi_value v;
  napi_create_string_utf8(env, s.data(), s.size(), &v);
  return v;
}

napi_value Null(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

napi_value Bool(napi_env env, bool b) {
  napi_value v;
  napi_get_boolean(env, b, &v);
  return v;
}

double TimeMs(const struct timespec& t) {
  return static_cast<double>(t.tv_sec) * 1000 + static_cast<double>(t.tv_nsec / 1000000);
}

// UTIME_NOW becomes the current time; UTIME_OMIT becomes null ("leave it as it is").
napi_value UtimeArg(napi_env env, const struct timespec& t) {
  if (t.tv_nsec == UTIME_OMIT) return Null(env);
  if (t.tv_nsec == UTIME_NOW) {
    struct timespec now;
    clock_gettime(CLOCK_REALTIME, &now);
    return Number(env, TimeMs(now));
  }
  return Number(env, TimeMs(t));
}

bool GetNumber(napi_env env, napi_value v, double* out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_number) return false;
  napi_get_value_double(env, v, out);
  return std::isfinite(*out);
}

// A property as a number: absent means `fallback`; a Date means its milliseconds.
bool Field(napi_env env, napi_value obj, const char* name, double fallback, double* out) {
  napi_value v;
  napi_valuetype type;
  if (napi_get_named_property(env, obj, name, &v) != napi_ok) return false;
  napi_typeof(env, v, &type);
  if (type == napi_undefined || type == napi_null) {
    *out = fallback;
    return true;
  }
  bool isDate = false;
  napi_is_date(env, v, &isDate);
  if (isDate) return napi_get_date_value(env, v, out) == napi_ok && std::isfinite(*out);
  return GetNumber(env, v, out);
}

struct timespec Timespec(double ms) {
  struct timespec t;
  double seconds = std::floor(ms / 1000);
  t.tv_sec = static_cast<time_t>(seconds);
  t.tv_nsec = static_cast<long>((ms - seconds * 1000) * 1e6);
  return t;
}

bool InRange(double value, double min, double max) { return value >= min && value <= max; }

bool FillStat(napi_env env, napi_value obj, struct stat* st) {
  napi_valuetype type;
  napi_typeof(env, obj, &type);
  if (type != napi_object) return false;
  double mode, uid, gid, size, nlink, ino, rdev, blksize, blocks, atime, mtime, ctime;
  if (!Field(env, obj, "mode", 0, &mode) || !Field(env, obj, "uid", 0, &uid) || !Field(env, obj, "gid", 0, &gid) ||
      !Field(env, obj, "size", 0, &size) || !Field(env, obj, "nlink", 1, &nlink) || !Field(env, obj, "ino", 0, &ino) ||
      !Field(env, obj, "rdev", 0, &rdev) || !Field(env, obj, "blksize", 4096, &blksize) ||
      !Field(env, obj, "blocks", std::ceil(size / 512), &blocks) || !Field(env, obj, "atime", 0, &atime) ||
      !Field(env, obj, "mtime", 0, &mtime) || !Field(env, obj, "ctime", 0, &ctime)) {
    return false;
  }
  // Casting a double C's type cannot hold is undefined behaviour: such an answer is EIO. An rdev
  // is at most 32 bits: FUSE's attributes carry no more, and a larger one would be cut short.
  constexpr double kMaxId = 4294967295.0, kMaxCount = 9007199254740992.0 /* 2^53 */, kMaxTimeMs = 253402300799999.0 /* 9999 */;
  if (!InRange(mode, 0, kMaxId) || !InRange(uid, 0, kMaxId) || !InRange(gid, 0, kMaxId) || !InRange(size, 0, kMaxCount) ||
      !InRange(nlink, 0, kMaxId) || !InRange(ino, 0, kMaxCount) || !InRange(rdev, 0, kMaxId) || !InRange(blksize, 0, kMaxId) ||
      !InRange(blocks, 0, kMaxCount) || !InRange(atime, -kMaxTimeMs, kMaxTimeMs) || !InRange(mtime, -kMaxTimeMs, kMaxTimeMs) ||
      !InRange(ctime, -kMaxTimeMs, kMaxTimeMs)) {
    return false;
  }
  st->st_mode = static_cast<mode_t>(mode);
  st->st_uid = static_cast<uid_t>(uid);
  st->st_gid = static_cast<gid_t>(gid);
  st->st_size = static_cast<off_t>(size);
  st->st_nlink = static_cast<nlink_t>(nlink);
  st->st_ino = static_cast<ino_t>(ino);
  st->st_rdev = static_cast<dev_t>(rdev);
  st->st_blksize = static_cast<blksize_t>(blksize);
  st->st_blocks = static_cast<blkcnt_t>(blocks);
  st->st_atim = Timespec(atime);
  st->st_mtim = Timespec(mtime);
  st->st_ctim = Timespec(ctime);
  return true;
}

bool FillStatvfs(napi_env env, napi_value obj, struct statvfs* st) {
  napi_valuetype type;
  napi_typeof(env, obj, &type);
  if (type != napi_object) return false;
  double v[11];
  const char* names[11] = {"bsize", "frsize", "blocks", "bfree", "bavail", "files", "ffree", "favail", "fsid", "flag", "namemax"};
  for (int i = 0; i < 11; i++) {
    if (!Field(env, obj, names[i], 0, &v[i]) || !InRange(v[i], 0, 9007199254740992.0)) return false;
  }
  st->f_bsize = static_cast<unsigned long>(v[0]);
  st->f_frsize = static_cast<unsigned long>(v[1]);
  st->f_blocks = static_cast<fsblkcnt_t>(v[2]);
  st->f_bfree = static_cast<fsblkcnt_t>(v[3]);
  st->f_bavail = static_cast<fsblkcnt_t>(v[4]);
  st->f_files = static_cast<fsfilcnt_t>(v[5]);
  st->f_ffree = static_cast<fsfilcnt_t>(v[6]);
  st->f_favail = static_cast<fsfilcnt_t>(v[7]);
  st->f_fsid = static_cast<unsigned long>(v[8]);
  st->f_flag = static_cast<unsigned long>(v[9]);
  st->f_namemax = static_cast<unsigned long>(v[10]);
  return true;
}

bool GetString(napi_env env, napi_value v, std::string* out) {
  napi_valuetype type;
  if (napi_typeof(env, v, &type) != napi_ok || type != napi_string) return false;
  size_t length;
  napi_get_value_string_utf8(env, v, nullptr, 0, &length);
  out->resize(length);
  napi_get_value_string_utf8(env, v, &(*out)[0], length + 1, &length);
  return true;
}

bool GetStrings(napi_env env, napi_value v, std::vector<std::string>* out) {
  bool isArray = false;
  napi_is_array(env, v, &isArray);
  if (!isArray) return false;
  uint32_t length;
  napi_get_array_length(env, v, &length);
  out->reserve(length);
  for (uint32_t i = 0; i < length; i++) {
    napi_value item;
    std::string s;
    napi_get_element(env, v, i, &item);
    if (!GetString(env, item, &s)) return false;
    out->push_back(std::move(s));
  }
  return true;
}

// readdirplus's answer: an array whose items are a name alone (attributes unknown: the kernel
// looks it up when it needs them) or an object with a `name` and the fields of a stat.
bool GetEntries(napi_env env, napi_value v, DirHandle* dir) {
  bool isArray = false;
  napi_is_array(env, v, &isArray);
  if (!isArray) return false;
  uint32_t length;
  napi_get_array_length(env, v, &length);
  dir->names.reserve(length);
  dir->attrs.reserve(length);
  dir->known.reserve(length);
  for (uint32_t i = 0; i < length; i++) {
    napi_value item;
    napi_get_element(env, v, i, &item);
    std::string name;
    struct stat st = {};
    bool known = false;
    if (!GetString(env, item, &name)) {
      napi_value field;
      if (napi_get_named_property(env, item, "name", &field) != napi_ok || !GetString(env, field, &name)) return false;
      if (!FillStat(env, item, &st)) return false;
      known = true;
    }
    dir->names.push_back(std::move(name));
    dir->attrs.push_back(st);
    dir->known.push_back(known);
  }
  return true;
}

// Converts the JS answer (code, result) of r->op into r's outputs: 0 or a count, or -errno.
int Convert(napi_env env, Request* r, double code, napi_value result) {
  if (code < 0) return static_cast<int>(code);
  switch (r->op) {
    case Op::Read:  // the op filled the block itself, through the Buffer
    case Op::Write:
      return static_cast<int>(std::min(static_cast<size_t>(code), r->size));
    case Op::Getattr:
    case Op::Fgetattr:
      memset(&r->attrOut, 0, sizeof(r->attrOut));
      return FillStat(env, result, &r->attrOut) ? 0 : -EIO;
    case Op::Statfs:
      return FillStatvfs(env, result, &r->statvfsOut) ? 0 : -EIO;
    case Op::Readdir:
      return GetStrings(env, result, &r->dir->names) ? 0 : -EIO;
    case Op::Readdirplus:
      return GetEntries(env, result, r->dir) ? 0 : -EIO;
    case Op::Open:
    case Op::Create:
    case Op::Opendir: {
      double fh = 0;
      napi_valuetype type;
      napi_typeof(env, result, &type);
      if (type != napi_undefined && (!GetNumber(env, result, &fh) || fh < 0)) return -EIO;
      r->outFh = static_cast<uint64_t>(fh);
      return 0;
    }
    case Op::Readlink:
      return GetString(env, result, &r->text) ? 0 : -EIO;
    case Op::Getxattr: {
      bool isBuffer = false;
      napi_is_buffer(env, result, &isBuffer);
      if (!isBuffer) return -EIO;
      void* data;
      size_t length;
      napi_get_buffer_info(env, result, &data, &length);
      r->text.assign(static_cast<const char*>(data), length);
      return 0;
    }
    case Op::Listxattr: {
      std::vector<std::string> names;
      if (!GetStrings(env, result, &names)) return -EIO;
      r->text.clear();
      for (const std::string& name : names) r->text.append(name).push_back('\0');
      return 0;
    }
    default:
      return 0;
  }
}

void LentBufferGone(napi_env /*env*/, void* /*data*/, void* hint) {
  auto* block = static_cast<LentBlock*>(hint);
  block->bufferGone = true;
  LentBlock::Release(block);
}

// Lends r's block to JS as a Buffer of `size` bytes at `data` (inside the block).
napi_value Lend(napi_env env, Request* r, char* data, size_t size) {
  napi_value buffer;
  napi_create_external_buffer(env, size, data, LentBufferGone, r->lent, &buffer);
  napi_create_reference(env, buffer, 1, &r->lentBuffer);
  return buffer;
}

napi_value CopyBuffer(napi_env env, const char* bytes, size_t size) {
  napi_value buffer;
  void* copy;
  napi_create_buffer_copy(env, size, size == 0 ? "" : bytes, &copy, &buffer);
  return buffer;
}

}  // namespace

// The JS arguments of r->op, before the reply callback.
size_t Session::Arguments(napi_env env, Request* r, napi_value* args) {
  size_t n = 0;
  if (r->op != Op::Init) args[n++] = String(env, r->path);
  switch (r->op) {
    case Op::Init:
    case Op::Statfs:
    case Op::Getattr:
    case Op::Readdir:
    case Op::Readdirplus:
    case Op::Rmdir:
    case Op::Unlink:
    case Op::Readlink:
    case Op::Listxattr:
      break;
    case Op::Fgetattr:
    case Op::Releasedir:
    case Op::Release:
      args[n++] = Number(env, static_cast<double>(r->fh));
      break;
    case Op::Flush:
      // Who closed a descriptor, and the inode number it has: the JS side may ask /proc whether
      // that process holds another descriptor on the file (fuse/descriptors.ts).
      args[n++] = Number(env, static_cast<double>(r->fh));
      args[n++] = Number(env, static_cast<double>(r->pid));
      args[n++] = Number(env, static_cast<double>(r->ino));
      break;
    case Op::Opendir:
    case Op::Open:
    case Op::Access:
      args[n++] = Number(env, r->flags);
      break;
    case Op::Chmod:
      args[n++] = Number(env, r->mode);
      break;
    case Op::Mkdir:
    case Op::Create:  // (path, mode, uid, gid[, flags]): the caller's ids, whose the new node is
      args[n++] = Number(env, r->mode);
      args[n++] = Number(env, r->uid);
      args[n++] = Number(env, r->gid);
      // The open flags: whether the create truncates, or must make a new file (O_TRUNC, O_EXCL).
      if (r->op == Op::Create) args[n++] = Number(env, r->flags);
      break;
    case Op::Read: {
      napi_value buffer = Lend(env, r, r->lent->mem, r->size);
      args[n++] = Number(env, static_cast<double>(r->fh));
      args[n++] = buffer;
      args[n++] = Number(env, static_cast<double>(r->size));
      args[n++] = Number(env, static_cast<double>(r->offset));
      break;
    }
    case Op::Write: {
      // The data stays where the kernel put it: the receive block is lent to JS, and the next
      // request is read into another.
      r->lent = new LentBlock{TakeReceiveBlock()};
      napi_value buffer = Lend(env, r, const_cast<char*>(r->input), r->size);
      args[n++] = Number(env, static_cast<double>(r->fh));
      args[n++] = buffer;
      args[n++] = Number(env, static_cast<double>(r->size));
      args[n++] = Number(env, static_cast<double>(r->offset));
      break;
    }
    case Op::Fsync:
    case Op::Fsyncdir:
      args[n++] = Bool(env, r->datasync);
      args[n++] = Number(env, static_cast<double>(r->fh));
      break;
    case Op::Truncate:
      args[n++] = Number(env, static_cast<double>(r->offset));
      break;
    case Op::Ftruncate:
      args[n++] = Number(env, static_cast<double>(r->fh));
      args[n++] = Number(env, static_cast<double>(r->offset));
      break;
    case Op::Rename:
    case Op::Link:
    case Op::Removexattr:
      args[n++] = String(env, r->path2);
      break;
    case Op::Symlink:  // (target, path, uid, gid)
      args[n++] = String(env, r->path2);
      args[n++] = Number(env, r->uid);
      args[n++] = Number(env, r->gid);
      break;
    case Op::Mknod:  // (path, mode, rdev, uid, gid)
      args[n++] = Number(env, r->mode);
      args[n++] = Number(env, static_cast<double>(r->dev));
      args[n++] = Number(env, r->uid);
      args[n++] = Number(env, r->gid);
      break;
    case Op::Chown:
      args[n++] = Number(env, r->uid);
      args[n++] = Number(env, r->gid);
      break;
    case Op::Utimens:
      args[n++] = UtimeArg(env, r->times[0]);
      args[n++] = UtimeArg(env, r->times[1]);
      break;
    case Op::Setxattr:
      args[n++] = String(env, r->path2);
      args[n++] = CopyBuffer(env, r->input, r->size);
      args[n++] = Number(env, 0);  // position (macOS only)
      args[n++] = Number(env, r->flags);
      break;
    case Op::Getxattr:
      args[n++] = String(env, r->path2);
      args[n++] = Number(env, 0);
      break;
    case Op::Count:
      break;
  }
  return n;
}

void Session::Run(Request* r, Op op) {
  if (!Has(op) || ended_) return Continue(r, ended_ ? -ENOTCONN : -ENOSYS);
  if (r->req != nullptr && !r->interruptWatched && Interruptible(r->kind)) {
    r->interruptWatched = true;
    // Calls OnInterrupt at once when the kernel interrupted the request before we saw it.
    fuse_req_interrupt_func(r->req, OnInterrupt, r);
    if (r->interrupted) {
      interruptedCount_++;
      return Fail(r, EINTR);
    }
  }
  r->op = op;
  if (op == Op::Read) {
    char* mem = r->size <= kBlockSize ? AllocBlock() : nullptr;
    if (mem == nullptr) return Continue(r, -ENOMEM);
    r->lent = new LentBlock{mem};
  }
  // dispatch(op, id, ...arguments): the JS wrapper calls the op with a reply closure that ends
  // in reply(id, ...). Closures made in JS cost far less than a native function per call.
  napi_value args[10];
  uint32_t id = nextId_++;
  if (nextId_ == 0) nextId_ = 1;
  r->jsId = id;
  napi_create_uint32(env_, static_cast<uint32_t>(op), &args[0]);
  napi_create_uint32(env_, id, &args[1]);
  size_t n = 2 + Arguments(env_, r, args + 2);
  inJs_[id] = r;
  napi_value dispatch, global;
  napi_get_reference_value(env_, dispatch_, &dispatch);
  napi_get_global(env_, &global);
  if (napi_call_function(env_, global, dispatch, n, args, nullptr) != napi_ok) {
    napi_value error = nullptr;
    bool pending = false;
    napi_is_exception_pending(env_, &pending);
    if (pending) napi_get_and_clear_last_exception(env_, &error);
    Settle(env_, id, -EIO, nullptr);
    if (error != nullptr) ReportOpError(env_, op, error);
  }
}

void Session::Settle(napi_env env, uint32_t id, double code, napi_value result) {
  auto it = inJs_.find(id);
  if (it == inJs_.end()) return;  // answered already, or abandoned by stop()
  Request* r = it->second;
  inJs_.erase(it);
  if (result == nullptr) napi_get_undefined(env, &result);
  if (r->interrupted && r->req == nullptr) {
    // The kernel has its EINTR and may have released what the outputs point at (a readdir's
    // directory handle): only an open's new handle is taken, to be released.
    int value = std::isfinite(code) ? static_cast<int>(std::trunc(code)) : -EIO;
    if (r->op == Op::Open && value >= 0) value = Convert(env, r, value, result);
    return TidyInterrupted(r, value);
  }
  int value = std::isfinite(code) ? Convert(env, r, std::trunc(code), result) : -EIO;
  Continue(r, value);
}

void Session::ReleaseLent(Request* r, bool succeeded) {
  LentBlock* block = r->lent;
  if (block == nullptr) return;
  r->lent = nullptr;
  block->settled = true;
  napi_value buffer;
  napi_get_reference_value(env_, r->lentBuffer, &buffer);
  napi_delete_reference(env_, r->lentBuffer);
  r->lentBuffer = nullptr;
  if (!succeeded) {
    LentBlock::Release(block);  // freed once the Buffer is collected (it was referenced until now)
    return;
  }
  // JS is done with it: cut JS off from the memory first, and only then reuse it. `returned` is
  // set before the detach, so a finalizer that runs during it only deletes the record (which is
  // then not ours to touch); if the detach fails, JS could still reach the memory, so it is not
  // reused and goes with the Buffer (the record is still there: no finalizer ran).
  char* mem = block->mem;
  block->returned = true;
  napi_value arraybuffer = nullptr;
  napi_typedarray_type type;
  size_t length, offset;
  void* data;
  bool detached = false;
  if (napi_get_typedarray_info(env_, buffer, &type, &length, &data, &arraybuffer, &offset) == napi_ok &&
      napi_detach_arraybuffer(env_, arraybuffer) == napi_ok) {
    napi_is_detached_arraybuffer(env_, arraybuffer, &detached);
  }
  if (!detached) {
    block->returned = false;
    LentBlock::Release(block);
    return;
  }
  FreeBlock(mem);
}

void Session::ReportOpError(napi_env env, Op op, napi_value error) {
  if (onOpError_ == nullptr) return;
  napi_value fn, global, args[2] = {String(env, kOpNames[static_cast<int>(op)]), error};
  napi_get_reference_value(env, onOpError_, &fn);
  napi_get_global(env, &global);
  if (napi_call_function(env, global, fn, 2, args, nullptr) != napi_ok) {
    napi_value ignored;
    napi_get_and_clear_last_exception(env, &ignored);  // a failing error reporter must not crash us
  }
}

}  // namespace objmount
