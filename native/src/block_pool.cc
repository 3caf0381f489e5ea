#include "block_pool.h"

#include <stdlib.h>

#include <mutex>
#include <vector>

namespace objmount {

namespace {

constexpr size_t kMaxFreeBlocks = 128;  // at most 128 MiB kept for reuse

// Blocks are freed by Buffer finalizers, which may run while Node exits: guarded, never destroyed.
std::mutex poolMu;
std::vector<char*>& FreeBlocks() {
  static auto* blocks = new std::vector<char*>();
  return *blocks;
}

}  // namespace

char* AllocBlock() {
  {
    std::lock_guard<std::mutex> lock(poolMu);
    if (!FreeBlocks().empty()) {
      char* block = FreeBlocks().back();
      FreeBlocks().pop_back();
      return block;
    }
  }
  return static_cast<char*>(malloc(kBlockSize));
}

void FreeBlock(char* block) {
  if (block == nullptr) return;
  {
    std::lock_guard<std::mutex> lock(poolMu);
    if (FreeBlocks().size() < kMaxFreeBlocks) {
      FreeBlocks().push_back(block);
      return;
    }
  }
  free(block);
}

}  // namespace objmount
