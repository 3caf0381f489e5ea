// The inode table of the low-level API: which path each inode number the kernel holds stands for.
//
// The kernel names files by inode number, while JS works with paths. Each node is a name in its
// parent; a path is the names from the root. A node lives while the kernel holds lookups of it
// (nlookup, dropped by FORGET) or while it is the parent of a node that lives. Unlinking, or
// renaming another file over it, detaches a node from its name: the kernel may still use it
// through open files, and such uses get the path it had.
//
// Inode numbers are handed out once and never reused (64 bits do not run out), so a generation
// number is not needed. JS thread only.
#pragma once

#include <fuse_lowlevel.h>
#include <time.h>

#include <string>
#include <unordered_map>
#include <vector>

namespace objmount {

struct Node {
  fuse_ino_t ino = 0;
  fuse_ino_t parent = 0;  // 0 once detached (and for the root)
  std::string name;
  uint64_t nlookup = 0;
  uint32_t children = 0;  // attached nodes whose parent this is
  bool detached = false;
  std::string lastPath;   // a detached node's path when it was detached
  // JS's handles of this file that the kernel holds open: a detached file's attributes come
  // from one of them (fstat after unlink asks by inode, without a handle).
  std::vector<uint64_t> openHandles;

  // What auto_cache compares: a file's pages are kept across opens while these stay the same.
  bool cacheValid = false;
  struct timespec mtime = {};
  off_t size = 0;
  double statUpdated = 0;  // monotonic seconds
};

class NodeTable {
 public:
  NodeTable();
  ~NodeTable();
  NodeTable(const NodeTable&) = delete;
  NodeTable& operator=(const NodeTable&) = delete;

  Node* Get(fuse_ino_t ino) const;
  // The path of `ino`; false when the kernel named an inode we do not know.
  bool Path(fuse_ino_t ino, std::string* out) const;
  // The path of `name` in directory `parent`.
  bool ChildPath(fuse_ino_t parent, const std::string& name, std::string* out) const;
  // The inode of an absolute path, if the kernel holds it; 0 otherwise.
  fuse_ino_t Resolve(const std::string& path) const;

  // A successful lookup of `name` in `parent`: the node (made if new), its lookup count raised.
  Node* Remember(fuse_ino_t parent, const std::string& name);
  void Forget(fuse_ino_t ino, uint64_t count);
  // `name` in `parent` is gone (unlinked, removed, or replaced by a rename).
  void Detach(fuse_ino_t parent, const std::string& name);
  // A rename: whatever was at the target is detached first.
  void Move(fuse_ino_t parent, const std::string& name, fuse_ino_t newParent, const std::string& newName);

  size_t size() const { return byIno_.size(); }

 private:
  static std::string Key(fuse_ino_t parent, const std::string& name);
  Node* Child(fuse_ino_t parent, const std::string& name) const;
  void DetachNode(Node* node);
  void DropIfUnused(Node* node);

  std::unordered_map<fuse_ino_t, Node*> byIno_;
  std::unordered_map<std::string, Node*> byName_;
  fuse_ino_t next_ = FUSE_ROOT_ID + 1;
};

}  // namespace objmount
