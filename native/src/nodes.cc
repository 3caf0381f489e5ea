#include "nodes.h"

#include <string.h>

#include <vector>

namespace objmount {

NodeTable::NodeTable() {
  auto* root = new Node();
  root->ino = FUSE_ROOT_ID;
  byIno_[root->ino] = root;
}

NodeTable::~NodeTable() {
  for (auto& entry : byIno_) delete entry.second;
}

std::string NodeTable::Key(fuse_ino_t parent, const std::string& name) {
  std::string key(reinterpret_cast<const char*>(&parent), sizeof(parent));
  key += name;
  return key;
}

Node* NodeTable::Get(fuse_ino_t ino) const {
  auto it = byIno_.find(ino);
  return it == byIno_.end() ? nullptr : it->second;
}

Node* NodeTable::Child(fuse_ino_t parent, const std::string& name) const {
  auto it = byName_.find(Key(parent, name));
  return it == byName_.end() ? nullptr : it->second;
}

bool NodeTable::Path(fuse_ino_t ino, std::string* out) const {
  std::vector<const std::string*> names;
  const Node* node = Get(ino);
  if (node == nullptr) return false;
  const std::string* prefix = nullptr;
  while (node->ino != FUSE_ROOT_ID) {
    if (node->detached) {
      prefix = &node->lastPath;
      break;
    }
    names.push_back(&node->name);
    node = Get(node->parent);
    if (node == nullptr) return false;  // cannot happen: a parent outlives its children
  }
  out->clear();
  if (prefix != nullptr) *out = *prefix;
  for (auto it = names.rbegin(); it != names.rend(); ++it) {
    out->push_back('/');
    out->append(**it);
  }
  if (out->empty()) out->push_back('/');
  return true;
}

bool NodeTable::ChildPath(fuse_ino_t parent, const std::string& name, std::string* out) const {
  if (!Path(parent, out)) return false;
  if (out->size() > 1) out->push_back('/');
  out->append(name);
  return true;
}

fuse_ino_t NodeTable::Resolve(const std::string& path) const {
  if (path.empty() || path[0] != '/') return 0;
  fuse_ino_t ino = FUSE_ROOT_ID;
  size_t start = 1;
  while (start < path.size()) {
    size_t end = path.find('/', start);
    if (end == std::string::npos) end = path.size();
    if (end > start) {
      Node* child = Child(ino, path.substr(start, end - start));
      if (child == nullptr) return 0;
      ino = child->ino;
    }
    start = end + 1;
  }
  return ino;
}

Node* NodeTable::Remember(fuse_ino_t parent, const std::string& name) {
  Node* node = Child(parent, name);
  if (node == nullptr) {
    Node* dir = Get(parent);
    if (dir == nullptr) return nullptr;
    node = new Node();
    node->ino = next_++;
    node->parent = parent;
    node->name = name;
    dir->children++;
    byIno_[node->ino] = node;
    byName_[Key(parent, name)] = node;
  }
  node->nlookup++;
  return node;
}

void NodeTable::Forget(fuse_ino_t ino, uint64_t count) {
  Node* node = Get(ino);
  if (node == nullptr || node->ino == FUSE_ROOT_ID) return;
  node->nlookup = count >= node->nlookup ? 0 : node->nlookup - count;
  DropIfUnused(node);
}

void NodeTable::Detach(fuse_ino_t parent, const std::string& name) {
  Node* node = Child(parent, name);
  if (node != nullptr) DetachNode(node);
}

void NodeTable::Move(fuse_ino_t parent, const std::string& name, fuse_ino_t newParent, const std::string& newName) {
  Node* node = Child(parent, name);
  Node* target = Child(newParent, newName);
  if (target == node) return;
  if (target != nullptr) DetachNode(target);
  if (node == nullptr) return;  // the kernel did not hold the source: nothing to move
  Node* from = Get(parent);
  Node* to = Get(newParent);
  if (to == nullptr) {  // cannot happen: the kernel holds the directory it renames into
    DetachNode(node);
    return;
  }
  byName_.erase(Key(parent, name));
  node->parent = newParent;
  node->name = newName;
  byName_[Key(newParent, newName)] = node;
  to->children++;
  if (from != nullptr) {
    from->children--;
    DropIfUnused(from);
  }
}

void NodeTable::DetachNode(Node* node) {
  if (node->detached || node->ino == FUSE_ROOT_ID) return;
  Path(node->ino, &node->lastPath);
  byName_.erase(Key(node->parent, node->name));
  Node* parent = Get(node->parent);
  node->detached = true;
  node->parent = 0;
  if (parent != nullptr) {
    parent->children--;
    DropIfUnused(parent);
  }
  DropIfUnused(node);
}

void NodeTable::DropIfUnused(Node* node) {
  while (node != nullptr && node->ino != FUSE_ROOT_ID && node->nlookup == 0 && node->children == 0) {
    Node* parent = nullptr;
    if (!node->detached) {
      byName_.erase(Key(node->parent, node->name));
      parent = Get(node->parent);
      if (parent != nullptr) parent->children--;
    }
    byIno_.erase(node->ino);
    delete node;
    node = parent;
  }
}

}  // namespace objmount
