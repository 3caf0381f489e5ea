#include "write_memory.h"

#include <stdlib.h>

#include <mutex>
#include <vector>

namespace objmount {

namespace {

constexpr size_t kPooledFrom = kWriteBlockSize / 2;
constexpr size_t kMaxFreeBlocks = 32;  // at most 32 MiB kept for reuse

std::mutex poolMu;
std::vector<char*>& FreeBlocks() {
  static auto* blocks = new std::vector<char*>();  // never destroyed: finalizers may run at exit
  return *blocks;
}

}  // namespace

char* AllocWriteMemory(size_t size) {
  if (size < kPooledFrom || size > kWriteBlockSize) return static_cast<char*>(malloc(size > 0 ? size : 1));
  {
    std::lock_guard<std::mutex> lock(poolMu);
    if (!FreeBlocks().empty()) {
      char* block = FreeBlocks().back();
      FreeBlocks().pop_back();
      return block;
    }
  }
  return static_cast<char*>(malloc(kWriteBlockSize));
}

void FreeWriteMemory(char* memory, size_t size) {
  if (size >= kPooledFrom && size <= kWriteBlockSize) {
    std::lock_guard<std::mutex> lock(poolMu);
    if (FreeBlocks().size() < kMaxFreeBlocks) {
      FreeBlocks().push_back(memory);
      return;
    }
  }
  free(memory);
}

}  // namespace objmount
