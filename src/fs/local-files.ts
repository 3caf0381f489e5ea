/**
 * How files in the staging, cache and metadata directories are opened: never through a symbolic link
 * (O_NOFOLLOW), and a file that must be new is made new (O_EXCL), so that nothing planted in
 * those directories can redirect our writes or feed our reads. The directories themselves are
 * checked at mount (daemon/private-directory.ts): owned by the user, writable by nobody else.
 */

import { constants } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

const { O_RDONLY, O_RDWR, O_WRONLY, O_CREAT, O_EXCL, O_TRUNC, O_APPEND, O_NOFOLLOW } = constants;

export const LOCAL = {
  /** An existing file, to read. */
  read: O_RDONLY | O_NOFOLLOW,
  /** An existing file, to read and write. */
  update: O_RDWR | O_NOFOLLOW,
  /** A new file under a name of its own (fails if anything is there). */
  create: O_RDWR | O_CREAT | O_EXCL | O_NOFOLLOW,
  /** A temporary file that a crash may have left: emptied if it is there. */
  replace: O_WRONLY | O_CREAT | O_TRUNC | O_NOFOLLOW,
  /** A log that lines are added to (made if missing). */
  append: O_WRONLY | O_CREAT | O_APPEND | O_NOFOLLOW,
} as const;

/** The whole of an existing local file, read without following a link. */
export async function readLocalFile(path: string): Promise<Buffer> {
  const handle: FileHandle = await open(path, LOCAL.read);
  try {
    return await handle.readFile();
  } finally {
    await handle.close();
  }
}
