// Memory blocks for FUSE requests and replies, each big enough for the largest request.
//
// Requests are read from /dev/fuse straight into a block. A write's data stays in its block, which
// is lent to JS as a Buffer for the operation only (FileSystem.write copies it into the staging
// file before it answers), so it is never copied on the way in; the session reads the next
// request into a fresh block. Reads are filled by JS in a block that is then sent to the kernel.
// Once the operation is answered the block comes back and the Buffer is detached from it (after
// a failed one, when the Buffer is collected: JS may still hold it). A small free list keeps fresh
// memory (a page fault per 4 KiB) off the hot path.
//
// Blocks are not cleared when they are used again (1 MiB per read would cost more than the read
// from cache itself): a read's reply sends the first n bytes of its block, n being the count its
// op returned, and the op counts only bytes it wrote for this read (FileSystem.read, proven by
// test/unit/read-replies.test.ts with the block full of an earlier request's bytes).
#pragma once

#include <stddef.h>

namespace objmount {

// The largest request: 1 MiB of write data plus its headers (the kernel wants room for them).
constexpr size_t kBlockSize = (1 << 20) + 4096;

// A block (nullptr when out of memory); give it back with FreeBlock.
char* AllocBlock();
void FreeBlock(char* block);

}  // namespace objmount
