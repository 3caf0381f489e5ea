/**
 * Whether a process still holds a descriptor open for writing on a file of this mount, read from
 * /proc: what the kernel's FLUSH does not say.
 *
 * The kernel sends FLUSH at every close(2) of a descriptor, and nothing tells the last one from a
 * close with other descriptors still open on the file (a dup's). A shell's `echo x > f` is the
 * common case: it opens f, dups the descriptor onto stdout, closes the original (FLUSH, nothing
 * written yet), writes, and closes stdout (FLUSH, then RELEASE). When the closing process still
 * has the file open for writing, its later close is sure to come (process exit closes it too),
 * so `FileSystem.flush` can leave an untouched new file to that close.
 *
 * Only a positive answer is used: the fd's link must be the file's path in this mount and its
 * fdinfo must show the file's inode number and a writable access mode. Anything unreadable (the
 * process has gone, another PID namespace, no permission, a renamed or deleted file) is "no",
 * and the flush saves as it always did. Readlink and fdinfo never call into the mount.
 */

import { readFileSync, readdirSync, readlinkSync } from 'node:fs';

const O_ACCMODE = 0o3;
/** Processes with more descriptors than this are not searched (the flush saves, as always). */
const MAX_DESCRIPTORS = 256;

/**
 * Whether process `pid` has a descriptor open for writing on `file` (an absolute path as the
 * daemon sees it) whose inode number is `ino`.
 *
 * Synchronous on purpose: /proc answers from kernel memory, never through this mount, and a few
 * calls on the event loop (tens of µs for a shell) cost far less than the same calls sent to the
 * thread pool one after another (about 0.5 ms).
 */
export function holdsWritableDescriptor(pid: number, file: string, ino: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    const fds = readdirSync(`/proc/${pid}/fd`);
    if (fds.length > MAX_DESCRIPTORS) return false;
    for (const fd of fds) {
      if (linkOf(`/proc/${pid}/fd/${fd}`) !== file) continue;
      const info = parseFdinfo(readFileSync(`/proc/${pid}/fdinfo/${fd}`, 'utf8'));
      if (info && info.ino === ino && (info.flags & O_ACCMODE) !== 0) return true;
    }
  } catch {
    // Gone, hidden or not ours to read: not known to be open.
  }
  return false;
}

/** The target of a /proc fd link; '' for one closed meanwhile. */
function linkOf(path: string): string {
  try {
    return readlinkSync(path);
  } catch {
    return '';
  }
}

/** The access flags (octal in fdinfo) and inode number of a /proc fdinfo text. */
export function parseFdinfo(text: string): { flags: number; ino: number } | undefined {
  const flags = /^flags:\s*([0-7]+)$/m.exec(text);
  const ino = /^ino:\s*(\d+)$/m.exec(text);
  if (!flags || !ino) return undefined;
  return { flags: Number.parseInt(flags[1]!, 8), ino: Number(ino[1]) };
}
