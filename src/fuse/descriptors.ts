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

import { readFile, readdir, readlink } from 'node:fs/promises';

const O_ACCMODE = 0o3;

/**
 * Whether process `pid` has a descriptor open for writing on `file` (an absolute path as the
 * daemon sees it) whose inode number is `ino`.
 */
export async function holdsWritableDescriptor(pid: number, file: string, ino: number): Promise<boolean> {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    const fds = await readdir(`/proc/${pid}/fd`);
    const links = await Promise.all(fds.map((fd) => readlink(`/proc/${pid}/fd/${fd}`).catch(() => '')));
    for (const [i, link] of links.entries()) {
      if (link !== file) continue;
      const info = parseFdinfo(await readFile(`/proc/${pid}/fdinfo/${fds[i]}`, 'utf8').catch(() => ''));
      if (info && info.ino === ino && (info.flags & O_ACCMODE) !== 0) return true;
    }
  } catch {
    // Gone, hidden or not ours to read: not known to be open.
  }
  return false;
}

/** The access flags (octal in fdinfo) and inode number of a /proc fdinfo text. */
export function parseFdinfo(text: string): { flags: number; ino: number } | undefined {
  const flags = /^flags:\s*([0-7]+)$/m.exec(text);
  const ino = /^ino:\s*(\d+)$/m.exec(text);
  if (!flags || !ino) return undefined;
  return { flags: Number.parseInt(flags[1]!, 8), ino: Number(ino[1]) };
}
