/**
 * The local directories a mount keeps state in (--staging-dir: data not yet in the store and
 * the journal; --cache-dir: blocks served as the object's bytes) must be the user's alone.
 * Another user who may write there could plant a file or a link where a staging file or a
 * cached block goes, and so read what is written or change what is read. So an existing
 * directory is refused unless the mounting user owns it and neither group nor others may write
 * it; a missing one is made with mode 0700. (The files in them are opened without following
 * links: fs/local-files.ts.)
 */

import { stat } from 'node:fs/promises';

import { UserError } from '../errors/user-error.js';

/** Throws one line naming `what` (e.g. `--staging-dir /x`) and what to do, unless `path` is missing or private. */
export async function checkPrivateDirectory(path: string, what: string): Promise<void> {
  let info: Awaited<ReturnType<typeof stat>>;
  try {
    info = await stat(path);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return; // made at mount, mode 0700
    throw new UserError(`cannot use ${what}: ${(error as Error).message}`);
  }
  if (!info.isDirectory()) throw new UserError(`cannot use ${what}: it is not a directory; give a directory (a missing one is made)`);
  const uid = process.geteuid?.();
  if (uid !== undefined && info.uid !== uid) {
    throw new UserError(
      `cannot use ${what}: it belongs to uid ${info.uid}, not to this user (uid ${uid}), who could read or change what a mount keeps there; give a directory of your own`,
    );
  }
  const writable = Number(info.mode) & 0o022;
  if (writable) {
    const who = writable === 0o022 ? 'group and others' : writable === 0o020 ? 'its group' : 'others';
    throw new UserError(
      `cannot use ${what}: ${who} may write in it (mode ${(Number(info.mode) & 0o7777).toString(8).padStart(4, '0')}), and could plant files where a mount keeps its own; run 'chmod go-w ${path}' or give a directory only you can write`,
    );
  }
}
