// Large Buffers backed by transparent huge pages, for the block cache's block buffers.
//
// A cold read fills every block of the cache in fresh memory, and fresh memory costs a page fault
// and a zeroed page per 4 KiB; in a VM each fault is several microseconds. Buffers made here are
// mappings of their own, aligned to 2 MiB and marked MADV_HUGEPAGE, so the kernel backs them with
// huge pages (one fault per 2 MiB) when its THP mode is `madvise` or `always`; elsewhere they are
// ordinary anonymous memory. Only these buffers ask for huge pages: glibc's own heap keeps 4 KiB
// pages (the whole-process tunable, glibc.malloc.hugetlb=1, inflated the daemon's resident size).
//
// Huge pages are asked for unless the caller says not to: on this project's VM a fresh huge page
// sometimes costs far more than 512 small ones (bench/RESULTS.md, Random reads), so the block
// cache, which fills a whole object's worth of fresh memory for random reads, keeps 4 KiB pages
// and only the mapping of its own (unmapped when collected, so the resident size stays bounded).
//
// The mapping is unmapped when the Buffer is collected, and V8 is told of the memory both ways, as
// it is of an ordinary Buffer's, so the garbage collector weighs it the same.
#include "large_buffer.h"

#include <node_api.h>
#include <sys/mman.h>

#include <cstdint>

namespace objmount {
namespace {

constexpr size_t kHugePage = 2 << 20;

void Unmap(napi_env env, void* data, void* hint) {
  size_t mapped = reinterpret_cast<uintptr_t>(hint);
  munmap(data, mapped);
  int64_t ignored;
  napi_adjust_external_memory(env, -static_cast<int64_t>(mapped), &ignored);
}

}  // namespace

// allocLargeBuffer(size, hugePages = true): a Buffer of `size` bytes (contents undefined), or
// undefined when the memory cannot be mapped (the caller allocates an ordinary one).
napi_value AllocLargeBuffer(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2] = {};
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  double requested = -1;
  napi_get_value_double(env, argv[0], &requested);
  bool hugePages = true;
  if (argc > 1) napi_get_value_bool(env, argv[1], &hugePages);  // not a boolean: left true
  napi_value undefined;
  napi_get_undefined(env, &undefined);
  if (!(requested > 0 && requested <= (1ULL << 40))) return undefined;
  size_t size = static_cast<size_t>(requested);
  size_t mapped = (size + kHugePage - 1) & ~(kHugePage - 1);
  // Map one huge page more than needed, then trim to a 2 MiB boundary at both ends.
  char* raw = static_cast<char*>(mmap(nullptr, mapped + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
  if (raw == MAP_FAILED) return undefined;
  char* aligned = reinterpret_cast<char*>((reinterpret_cast<uintptr_t>(raw) + kHugePage - 1) & ~(kHugePage - 1));
  if (aligned > raw) munmap(raw, aligned - raw);
  char* tail = aligned + mapped;
  size_t tailLength = raw + mapped + kHugePage - tail;
  if (tailLength > 0) munmap(tail, tailLength);
  if (hugePages) madvise(aligned, mapped, MADV_HUGEPAGE);  // a kernel without THP refuses: ordinary pages then
  napi_value buffer;
  if (napi_create_external_buffer(env, size, aligned, Unmap, reinterpret_cast<void*>(mapped), &buffer) != napi_ok) {
    munmap(aligned, mapped);
    return undefined;
  }
  int64_t ignored;
  napi_adjust_external_memory(env, static_cast<int64_t>(mapped), &ignored);
  return buffer;
}

}  // namespace objmount
