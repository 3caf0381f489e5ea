// The addon's JS interface. Arguments are checked here, and a wrong one throws a TypeError that
// names it, so a mistake in the TypeScript wrapper fails at once instead of inside FUSE.
//
//   create(mountpoint, options, ops, dispatch) -> handle
//       ops: which operations exist (functions); dispatch(op, id, ...arguments) is called for
//       each request, op an index into opNames
//   reply(handle, id, code, result?)  answers request `id`
//   mount(handle, onMounted(error|null), onEnded(), onOpError?(op, error))
//   unmount(handle)                  answers pending ops ENOTCONN, closes the connection, onEnded()
//   invalidatePath(handle, path, callback(errno), pagesOnly?)   drops the kernel's cache of a path
//       (pagesOnly: the inode's attributes and pages, not its name)
//   nodeCount(handle) -> the size of the inode table: nodes the kernel holds, their directories, the root
//   storePages(handle, fh, offset, buffer, callback(errno))  pushes buffer's bytes into the page
//       cache of the file open as fh, at offset (page_store.cc); the buffer must stay unchanged
//       until the callback
//   storesSent(handle) -> how many page stores were sent to the kernel
//   dropFromPageCache(fd, offset, length, callback(errno))  writes a range back and drops it (page_cache.cc)
//   sha256(buffer, callback(hex | null))  a Buffer's SHA-256, off the JS thread (sha256.cc)
#include <errno.h>

#include <cmath>
#include <string>

#include "large_buffer.h"
#include "page_cache.h"
#include "sha256.h"
#include "session.h"

namespace objmount {

namespace {

napi_value Undefined(napi_env env) {
  napi_value v;
  napi_get_undefined(env, &v);
  return v;
}

napi_value ThrowType(napi_env env, const std::string& message) {
  napi_throw_type_error(env, "ERR_INVALID_ARG_TYPE", message.c_str());
  return nullptr;
}

napi_valuetype TypeOf(napi_env env, napi_value v) {
  napi_valuetype type = napi_undefined;
  if (v != nullptr) napi_typeof(env, v, &type);
  return type;
}

bool ReadString(napi_env env, napi_value v, std::string* out) {
  if (TypeOf(env, v) != napi_string) return false;
  size_t length;
  napi_get_value_string_utf8(env, v, nullptr, 0, &length);
  out->resize(length);
  napi_get_value_string_utf8(env, v, &(*out)[0], length + 1, &length);
  return true;
}

// Reads options.<name> into *out when present; false (with a TypeError thrown) when mistyped.
bool OptionBool(napi_env env, napi_value options, const char* name, bool* out) {
  napi_value v;
  napi_get_named_property(env, options, name, &v);
  napi_valuetype type = TypeOf(env, v);
  if (type == napi_undefined) return true;
  if (type != napi_boolean) {
    ThrowType(env, std::string("options.") + name + " must be a boolean");
    return false;
  }
  napi_get_value_bool(env, v, out);
  return true;
}

bool OptionNumber(napi_env env, napi_value options, const char* name, double min, double max, double* out) {
  napi_value v;
  napi_get_named_property(env, options, name, &v);
  napi_valuetype type = TypeOf(env, v);
  if (type == napi_undefined) return true;
  double value = NAN;
  if (type == napi_number) napi_get_value_double(env, v, &value);
  if (!(value >= min && value <= max)) {
    ThrowType(env, std::string("options.") + name + " must be a number from " + std::to_string(static_cast<long long>(min)) +
                       " to " + std::to_string(static_cast<long long>(max)));
    return false;
  }
  *out = value;
  return true;
}

// A mount option value: it must not break libfuse's comma-separated option string.
bool OptionName(napi_env env, napi_value options, const char* name, std::string* out) {
  napi_value v;
  napi_get_named_property(env, options, name, &v);
  napi_valuetype type = TypeOf(env, v);
  if (type == napi_undefined) return true;
  std::string value;
  if (!ReadString(env, v, &value) || value.empty() || value.find_first_of(",\\") != std::string::npos) {
    ThrowType(env, std::string("options.") + name + " must be a non-empty string without ',' or '\\'");
    return false;
  }
  *out = value;
  return true;
}

void FinalizeHandle(napi_env env, void* data, void* /*hint*/) { static_cast<Session*>(data)->HandleGone(env); }

Session* GetSession(napi_env env, napi_value v) {
  void* data = nullptr;
  if (TypeOf(env, v) != napi_external || napi_get_value_external(env, v, &data) != napi_ok || data == nullptr) {
    ThrowType(env, "the first argument must be a session handle from create()");
    return nullptr;
  }
  return static_cast<Session*>(data);
}

// Reads the arguments of a call whose first is a session handle (into `argv`; `given`: how many
// there were): the session, or nullptr with a TypeError thrown.
template <size_t N>
Session* SessionArgs(napi_env env, napi_callback_info info, napi_value (&argv)[N], size_t* given = nullptr) {
  size_t argc = N;
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  if (given != nullptr) *given = argc;
  return GetSession(env, argv[0]);
}

napi_value Create(napi_env env, napi_callback_info info) {
  size_t argc = 4;
  napi_value argv[4] = {};
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  SessionOptions o;
  if (!ReadString(env, argv[0], &o.mountpoint) || o.mountpoint.empty() || o.mountpoint[0] != '/') {
    return ThrowType(env, "mountpoint must be an absolute path");
  }
  if (TypeOf(env, argv[1]) != napi_object) return ThrowType(env, "options must be an object");
  if (TypeOf(env, argv[2]) != napi_object) return ThrowType(env, "ops must be an object of functions");
  if (TypeOf(env, argv[3]) != napi_function) return ThrowType(env, "dispatch must be a function");
  napi_value options = argv[1];
  o.fsName = "objmount";
  o.subtype = "objmount";
  double attr = o.attrTimeout, entry = o.entryTimeout, negative = o.negativeTimeout;
  double maxWrite = o.maxWrite, maxRead = o.maxRead;
  if (!OptionName(env, options, "fsName", &o.fsName) || !OptionName(env, options, "subtype", &o.subtype) ||
      !OptionBool(env, options, "allowOther", &o.allowOther) ||
      !OptionBool(env, options, "defaultPermissions", &o.defaultPermissions) ||
      !OptionBool(env, options, "autoCache", &o.autoCache) || !OptionBool(env, options, "writebackCache", &o.writebackCache) ||
      !OptionBool(env, options, "debug", &o.debug) || !OptionNumber(env, options, "attrTimeout", 0, 1e9, &attr) ||
      !OptionNumber(env, options, "entryTimeout", 0, 1e9, &entry) ||
      !OptionNumber(env, options, "negativeTimeout", 0, 1e9, &negative) ||
      // libfuse's request buffer holds 256 pages: 1 MiB is the most a write can carry.
      !OptionNumber(env, options, "maxWrite", 4096, 1 << 20, &maxWrite) ||
      !OptionNumber(env, options, "maxRead", 4096, 1 << 20, &maxRead)) {
    return nullptr;
  }
  o.attrTimeout = attr;
  o.entryTimeout = entry;
  o.negativeTimeout = negative;
  o.maxWrite = static_cast<unsigned>(maxWrite);
  o.maxRead = static_cast<unsigned>(maxRead);

  for (int i = 0; i < static_cast<int>(Op::Count); i++) {
    napi_value fn;
    napi_get_named_property(env, argv[2], kOpNames[i], &fn);
    napi_valuetype type = TypeOf(env, fn);
    if (type != napi_undefined && type != napi_function) return ThrowType(env, std::string("ops.") + kOpNames[i] + " must be a function");
  }

  auto* session = new Session(env, std::move(o));
  if (session->Setup(env, argv[2], argv[3]) != napi_ok) {
    delete session;
    napi_throw_error(env, nullptr, "cannot set up the FUSE session");
    return nullptr;
  }
  napi_value handle;
  napi_create_external(env, session, FinalizeHandle, nullptr, &handle);
  return handle;
}

napi_value Mount(napi_env env, napi_callback_info info) {
  napi_value argv[4] = {};
  Session* session = SessionArgs(env, info, argv);
  if (session == nullptr) return nullptr;
  if (TypeOf(env, argv[1]) != napi_function) return ThrowType(env, "onMounted must be a function");
  if (TypeOf(env, argv[2]) != napi_function) return ThrowType(env, "onEnded must be a function");
  napi_valuetype errorType = TypeOf(env, argv[3]);
  if (errorType != napi_undefined && errorType != napi_function) return ThrowType(env, "onOpError must be a function");
  std::string error;
  if (!session->Start(env, argv[1], argv[2], errorType == napi_function ? argv[3] : nullptr, &error)) {
    // Told through onMounted, as a mount that fails later would be.
    napi_value message, arg, global;
    napi_create_string_utf8(env, error.c_str(), NAPI_AUTO_LENGTH, &message);
    napi_create_error(env, nullptr, message, &arg);
    napi_get_global(env, &global);
    napi_call_function(env, global, argv[1], 1, &arg, nullptr);
  }
  return Undefined(env);
}

napi_value Unmount(napi_env env, napi_callback_info info) {
  napi_value argv[1] = {};
  Session* session = SessionArgs(env, info, argv);
  if (session == nullptr) return nullptr;
  session->Stop(env);
  return Undefined(env);
}

napi_value Reply(napi_env env, napi_callback_info info) {
  napi_value argv[4] = {};
  size_t argc = 0;
  Session* session = SessionArgs(env, info, argv, &argc);
  if (session == nullptr) return nullptr;
  double id = -1, code = NAN;
  if (TypeOf(env, argv[1]) == napi_number) napi_get_value_double(env, argv[1], &id);
  if (!(id >= 0 && id <= 4294967295.0)) return ThrowType(env, "id must be a request id from dispatch");
  if (TypeOf(env, argv[2]) == napi_number) napi_get_value_double(env, argv[2], &code);  // anything else: EIO
  session->Settle(env, static_cast<uint32_t>(id), code, argc > 3 ? argv[3] : nullptr);
  return Undefined(env);
}

napi_value NodeCount(napi_env env, napi_callback_info info) {
  napi_value argv[1] = {};
  Session* session = SessionArgs(env, info, argv);
  if (session == nullptr) return nullptr;
  napi_value count;
  napi_create_double(env, static_cast<double>(session->nodes().size()), &count);
  return count;
}

napi_value InvalidatePath(napi_env env, napi_callback_info info) {
  napi_value argv[4] = {};
  Session* session = SessionArgs(env, info, argv);
  if (session == nullptr) return nullptr;
  std::string path;
  if (!ReadString(env, argv[1], &path) || path.empty() || path[0] != '/') {
    return ThrowType(env, "path must be an absolute path inside the mount");
  }
  if (TypeOf(env, argv[2]) != napi_function) return ThrowType(env, "callback must be a function");
  bool pagesOnly = false;
  napi_valuetype pagesOnlyType = TypeOf(env, argv[3]);
  if (pagesOnlyType != napi_undefined && pagesOnlyType != napi_boolean) return ThrowType(env, "pagesOnly must be a boolean");
  if (pagesOnlyType == napi_boolean) napi_get_value_bool(env, argv[3], &pagesOnly);
  session->Invalidate(env, path, argv[2], pagesOnly);
  return Undefined(env);
}

napi_value StorePages(napi_env env, napi_callback_info info) {
  napi_value argv[5] = {};
  Session* session = SessionArgs(env, info, argv);
  if (session == nullptr) return nullptr;
  double fh = -1, offset = -1;
  if (TypeOf(env, argv[1]) == napi_number) napi_get_value_double(env, argv[1], &fh);
  if (!(fh >= 0 && fh <= 9007199254740992.0)) return ThrowType(env, "fh must be a file handle from open or create");
  if (TypeOf(env, argv[2]) == napi_number) napi_get_value_double(env, argv[2], &offset);
  if (!(offset >= 0 && offset <= 9007199254740992.0) || std::floor(offset) != offset) {
    return ThrowType(env, "offset must be a whole number of bytes");
  }
  bool isBuffer = false;
  napi_is_buffer(env, argv[3], &isBuffer);
  if (!isBuffer) return ThrowType(env, "data must be a Buffer");
  if (TypeOf(env, argv[4]) != napi_function) return ThrowType(env, "callback must be a function");
  void* data = nullptr;
  size_t length = 0;
  napi_get_buffer_info(env, argv[3], &data, &length);
  session->StorePages(env, static_cast<uint64_t>(fh), static_cast<int64_t>(offset), static_cast<const char*>(data), length,
                      argv[3], argv[4]);
  return Undefined(env);
}

napi_value StoresSent(napi_env env, napi_callback_info info) {
  napi_value argv[1] = {};
  Session* session = SessionArgs(env, info, argv);
  if (session == nullptr) return nullptr;
  napi_value count;
  napi_create_double(env, static_cast<double>(session->storesSent()), &count);
  return count;
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor props[] = {
      {"create", nullptr, Create, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"reply", nullptr, Reply, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"mount", nullptr, Mount, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"unmount", nullptr, Unmount, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"invalidatePath", nullptr, InvalidatePath, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"nodeCount", nullptr, NodeCount, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"storePages", nullptr, StorePages, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"storesSent", nullptr, StoresSent, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"allocLargeBuffer", nullptr, AllocLargeBuffer, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"dropFromPageCache", nullptr, DropFromPageCache, nullptr, nullptr, nullptr, napi_default, nullptr},
      {"sha256", nullptr, Sha256, nullptr, nullptr, nullptr, napi_default, nullptr},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  napi_value names;
  napi_create_array_with_length(env, static_cast<size_t>(Op::Count), &names);
  for (int i = 0; i < static_cast<int>(Op::Count); i++) {
    napi_value name;
    napi_create_string_utf8(env, kOpNames[i], NAPI_AUTO_LENGTH, &name);
    napi_set_element(env, names, i, name);
  }
  napi_set_named_property(env, exports, "opNames", names);
  return exports;
}

}  // namespace

}  // namespace objmount

NAPI_MODULE(NODE_GYP_MODULE_NAME, objmount::Init)
