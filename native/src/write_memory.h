// Memory for the data of FUSE writes, which JS Buffers then own.
//
// Large writes (most are 1 MiB) take blocks from a small free list instead of fresh memory:
// fresh memory costs a page fault per 4 KiB on the FUSE thread that copies into it, which
// measured about as much as the copy itself. A block comes back when its Buffer is collected.
// Small writes use plain malloc, so a JS Buffer kept for a few bytes never pins a 1 MiB block.
#pragma once

#include <stddef.h>

namespace objmount {

constexpr size_t kWriteBlockSize = 1 << 20;

// Memory for `size` bytes (nullptr when out of memory); give it back with FreeWriteMemory.
char* AllocWriteMemory(size_t size);
void FreeWriteMemory(char* memory, size_t size);

}  // namespace objmount
