// Memory blocks for FUSE requests and replies, each big enough for the largest request.
//
// Requests are read from /dev/fuse straight into a block. A write's data stays in its block, which
// is lent to JS as a Buffer for the operation only (FileSystem.write copies it into the staging
// file before it answers), so it is never copied on the way in; the session reads the next
// request into a fresh block. Reads are filled by JS in a block that is then sent to the kernel.
// Once the operation is answered the block comes back and the Buffer is detached from it (after
// a failed one, when the Buffer is collected: JS may still hold it). A small free list keeps fresh
// memory (a page fault per 4 KiB) off the hot path.
#pragma once

#include <stddef.h>

namespace objmount {

// The largest request: 1 MiB of write data plus its headers (the kernel wants room for them).
constexpr size_t kBlockSize = (1 << 20) + 4096;

// A block (nullptr when out of memory); give it back with FreeBlock.
char* AllocBlock();
void FreeBlock(char* block);

}  // namespace objmount
