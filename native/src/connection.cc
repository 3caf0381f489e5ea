// The kernel side of a session: finding its fusectl connection and aborting it.
//
// Aborting is how stop() wakes libfuse's workers, which block in read() on /dev/fuse: a lazy
// detach alone ends the connection only once no process uses the mount any more.
#include <fcntl.h>
#include <unistd.h>

#include <fstream>
#include <sstream>
#include <string>

#include "session.h"

namespace objmount {

namespace {

// /proc/self/mountinfo escapes space, tab, newline and backslash as \ooo.
std::string Unescape(const std::string& field) {
  std::string out;
  for (size_t i = 0; i < field.size(); i++) {
    if (field[i] == '\\' && i + 3 < field.size()) {
      out += static_cast<char>(std::stoi(field.substr(i + 1, 3), nullptr, 8));
      i += 3;
    } else {
      out += field[i];
    }
  }
  return out;
}

}  // namespace

unsigned FindConnection(const std::string& mountpoint) {
  std::ifstream table("/proc/self/mountinfo");
  std::string line;
  unsigned found = 0;
  while (std::getline(table, line)) {
    std::istringstream fields(line);
    std::string id, parent, device, root, point;
    if (!(fields >> id >> parent >> device >> root >> point)) continue;
    if (Unescape(point) != mountpoint) continue;
    size_t colon = device.find(':');
    if (colon == std::string::npos) continue;
    found = static_cast<unsigned>(std::stoul(device.substr(colon + 1)));  // the last mount there wins
  }
  return found;
}

bool AbortConnection(unsigned connection) {
  std::string path = "/sys/fs/fuse/connections/" + std::to_string(connection) + "/abort";
  int fd = open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return false;
  bool ok = write(fd, "1", 1) == 1;
  close(fd);
  return ok;
}

}  // namespace objmount
