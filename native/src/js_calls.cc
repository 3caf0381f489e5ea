// The JS side of a request: calling the JS operation and turning its answer into what libfuse
// expects. Runs only on the JS thread.
//
// Each call gets an id; the JS wrapper (src/fuse/binding.ts) answers through reply(id, code,
// result). A code that is not a number, a result of the wrong type, or an operation that throws
// becomes EIO; a second reply, or one arriving after stop() answered the request, is ignored.
#include <errno.h>
#include <string.h>
#include <time.h>

#include <cmath>
#include <string>

#include "session.h"
#include "write_memory.h"

namespace objmount {

const char* const kOpNames[static_cast<int>(Op::Count)] = {
    "init",      "statfs",   "getattr",  "fgetattr",    "readdir", "opendir",  "releasedir", "mkdir",   "rmdir",
    "create",    "open",     "read",     "write",       "flush",   "fsync",    "fsyncdir",   "release", "truncate",
    "ftruncate", "unlink",   "rename",   "symlink",     "readlink", "link",    "mknod",      "chmod",   "chown",
    "utimens",   "setxattr", "getxattr", "listxattr",   "removexattr", "access"};

void ReadBlock::Release(ReadBlock* block) {
  if (!block->settled || !block->bufferGone) return;
  if (!block->handed) free(block->mem);
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
    if (!Field(env, obj, names[i], 0, &v[i])) return false;
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

// getxattr/listxattr: size 0 asks for the length; a short buffer is ERANGE.
int CopySized(Request* r, const char* data, size_t length) {
  if (r->size == 0) return static_cast<int>(length);
  if (length > r->size) return -ERANGE;
  memcpy(r->output, data, length);
  return static_cast<int>(length);
}

// Converts the JS answer (code, result) for `r`: the value the FUSE thread returns.
int Convert(napi_env env, Request* r, double code, napi_value result) {
  if (code < 0) return static_cast<int>(code);
  switch (r->op) {
    case Op::Read:  // the op filled r->output itself, through the Buffer
      return static_cast<int>(std::min(static_cast<size_t>(code), r->size));
    case Op::Write:
      return static_cast<int>(std::min(static_cast<size_t>(code), r->size));
    case Op::Getattr:
    case Op::Fgetattr:
      return FillStat(env, result, r->stat) ? 0 : -EIO;
    case Op::Statfs:
      return FillStatvfs(env, result, r->statvfs) ? 0 : -EIO;
    case Op::Readdir:
      return GetStrings(env, result, r->names) ? 0 : -EIO;
    case Op::Open:
    case Op::Create:
    case Op::Opendir: {
      double fh = 0;
      napi_valuetype type;
      napi_typeof(env, result, &type);
      if (type != napi_undefined && (!GetNumber(env, result, &fh) || fh < 0)) return -EIO;
      *reinterpret_cast<uint64_t*>(r->output) = static_cast<uint64_t>(fh);
      return 0;
    }
    case Op::Readlink: {
      std::string target;
      if (!GetString(env, result, &target) || r->size == 0) return -EIO;
      size_t n = std::min(target.size(), r->size - 1);
      memcpy(r->output, target.data(), n);
      r->output[n] = '\0';
      return 0;
    }
    case Op::Getxattr: {
      bool isBuffer = false;
      napi_is_buffer(env, result, &isBuffer);
      if (!isBuffer) return -EIO;
      void* data;
      size_t length;
      napi_get_buffer_info(env, result, &data, &length);
      return CopySized(r, static_cast<const char*>(data), length);
    }
    case Op::Listxattr: {
      std::vector<std::string> names;
      if (!GetStrings(env, result, &names)) return -EIO;
      std::string list;
      for (const std::string& name : names) list.append(name).push_back('\0');
      return CopySized(r, list.data(), list.size());
    }
    default:
      return 0;
  }
}

void ReadBufferGone(napi_env /*env*/, void* /*data*/, void* hint) {
  auto* block = static_cast<ReadBlock*>(hint);
  block->bufferGone = true;
  ReadBlock::Release(block);
}

void FreeWriteData(napi_env env, void* data, void* hint) {
  size_t size = reinterpret_cast<uintptr_t>(hint);
  FreeWriteMemory(static_cast<char*>(data), size);
  int64_t ignored;
  napi_adjust_external_memory(env, -static_cast<int64_t>(size), &ignored);
}

napi_value CopyBuffer(napi_env env, const char* bytes, size_t size) {
  napi_value buffer;
  void* copy;
  napi_create_buffer_copy(env, size, size == 0 ? "" : bytes, &copy, &buffer);
  return buffer;
}

// The JS arguments of `r`, before the reply callback.
size_t Arguments(napi_env env, Request* r, napi_value* args) {
  size_t n = 0;
  if (r->op != Op::Init) args[n++] = String(env, r->path);
  switch (r->op) {
    case Op::Init:
    case Op::Statfs:
    case Op::Getattr:
    case Op::Readdir:
    case Op::Rmdir:
    case Op::Unlink:
    case Op::Readlink:
    case Op::Listxattr:
      break;
    case Op::Fgetattr:
    case Op::Releasedir:
    case Op::Flush:
    case Op::Release:
      args[n++] = Number(env, static_cast<double>(r->fh));
      break;
    case Op::Opendir:
    case Op::Open:
    case Op::Access:
      args[n++] = Number(env, r->flags);
      break;
    case Op::Mkdir:
    case Op::Create:
    case Op::Chmod:
      args[n++] = Number(env, r->mode);
      break;
    case Op::Read: {
      napi_value buffer;
      r->readBlock = new ReadBlock{r->output};
      napi_create_external_buffer(env, r->size, r->output, ReadBufferGone, r->readBlock, &buffer);
      napi_create_reference(env, buffer, 1, &r->readBuffer);
      args[n++] = Number(env, static_cast<double>(r->fh));
      args[n++] = buffer;
      args[n++] = Number(env, static_cast<double>(r->size));
      args[n++] = Number(env, static_cast<double>(r->offset));
      break;
    }
    case Op::Write: {
      // The FUSE thread's copy of the data (see Write in fuse_ops.cc), now JS's to keep.
      napi_value buffer;
      napi_create_external_buffer(env, r->size, const_cast<char*>(r->input), FreeWriteData,
                                  reinterpret_cast<void*>(static_cast<uintptr_t>(r->capacity)), &buffer);
      // V8 does not see memory outside its heap: tell it, so kept-then-dropped write Buffers
      // are collected as promptly as ordinary ones.
      int64_t ignored;
      napi_adjust_external_memory(env, static_cast<int64_t>(r->capacity), &ignored);
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
    case Op::Symlink:
    case Op::Link:
    case Op::Removexattr:
      args[n++] = String(env, r->path2);
      break;
    case Op::Mknod:
      args[n++] = Number(env, r->mode);
      args[n++] = Number(env, static_cast<double>(r->dev));
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

}  // namespace

void Session::Settle(napi_env env, uint32_t id, double code, napi_value result) {
  auto it = inJs_.find(id);
  if (it == inJs_.end()) return;  // answered already, or aborted by stop()
  Request* r = it->second;
  inJs_.erase(it);
  bool finished = false;
  {
    std::lock_guard<std::mutex> lock(r->mu);
    if (!r->done) {
      if (result == nullptr) napi_get_undefined(env, &result);
      int value = std::isfinite(code) ? Convert(env, r, std::trunc(code), result) : -EIO;
      if (r->readBlock != nullptr) r->readBlock->handed = value >= 0;  // before the FUSE thread may go on
      finished = r->finishLocked(value);
    }
  }
  if (finished) r->Wake();
  ReleaseJs(env, r);
}

void Session::ReleaseJs(napi_env env, Request* r) {
  if (r->readBuffer != nullptr) {
    ReadBlock* block = r->readBlock;
    block->settled = true;
    napi_value buffer;
    napi_get_reference_value(env, r->readBuffer, &buffer);
    napi_delete_reference(env, r->readBuffer);
    r->readBuffer = nullptr;
    r->readBlock = nullptr;
    if (block->handed) {
      // libfuse frees the memory once the FUSE thread returns: cut JS off from it. The Buffer's
      // finalizer (now or later) then deletes the block; it is not ours to touch any more.
      napi_value arraybuffer;
      napi_typedarray_type type;
      size_t length, offset;
      void* data;
      napi_get_typedarray_info(env, buffer, &type, &length, &data, &arraybuffer, &offset);
      napi_detach_arraybuffer(env, arraybuffer);
    } else {
      ReadBlock::Release(block);
    }
  }
  r->unref();
}

void Session::AbortInJs(napi_env env) {
  for (auto& entry : inJs_) {
    entry.second->abort(-ENOTCONN);
    ReleaseJs(env, entry.second);
  }
  inJs_.clear();
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

void Session::Deliver(napi_env env, Message* message) {
  napi_handle_scope scope;
  napi_open_handle_scope(env, &scope);
  napi_value global;
  napi_get_global(env, &global);
  if (message->kind != Message::Kind::Call) {
    auto* event = static_cast<Event*>(message);
    napi_value fn, arg;
    bool mounted = message->kind == Message::Kind::Mounted;
    napi_get_reference_value(env, mounted ? onMounted_ : onEnded_, &fn);
    if (mounted && !event->error.empty()) {
      napi_create_error(env, nullptr, String(env, event->error), &arg);
    } else {
      arg = Null(env);
    }
    // Once ended (or never mounted), nothing more comes from this session: let the process exit.
    bool last = !mounted || !event->error.empty();
    if (last) napi_unref_threadsafe_function(env, tsfn_);
    delete event;
    if (fn != nullptr && napi_call_function(env, global, fn, 1, &arg, nullptr) == napi_pending_exception) {
      napi_value error;
      napi_get_and_clear_last_exception(env, &error);
      napi_throw(env, error);  // a throwing lifecycle callback is the caller's bug: surface it
    }
    if (last) DropReferences(env);
    napi_close_handle_scope(env, scope);
    return;
  }

  auto* r = static_cast<Request*>(message);
  bool answered;
  {
    std::lock_guard<std::mutex> lock(r->mu);
    answered = r->done;
    if (!answered && r->op == Op::Read) r->readShared = true;
    if (!answered && r->op == Op::Write) r->inputTaken = true;
  }
  if (!answered) {
    // dispatch(op, id, ...arguments): the JS wrapper calls the op with a reply closure that ends
    // in Reply(id, ...). Closures made in JS cost far less than a native function per call.
    napi_value args[10];
    uint32_t id = nextId_++;
    napi_create_uint32(env, static_cast<uint32_t>(r->op), &args[0]);
    napi_create_uint32(env, id, &args[1]);
    size_t n = 2 + Arguments(env, r, args + 2);
    r->ref();
    inJs_[id] = r;
    napi_value dispatch;
    napi_get_reference_value(env, dispatch_, &dispatch);
    if (napi_call_function(env, global, dispatch, n, args, nullptr) != napi_ok) {
      napi_value error = nullptr;
      bool pending = false;
      napi_is_exception_pending(env, &pending);
      if (pending) napi_get_and_clear_last_exception(env, &error);
      Settle(env, id, -EIO, nullptr);
      if (error != nullptr) ReportOpError(env, r->op, error);
    }
  }
  r->unref();  // the queued message's reference
  napi_close_handle_scope(env, scope);
}

}  // namespace objmount
