/**
 * A small tmpfs of its own, for tests of a full disk (ENOSPC). Mounting needs root, as the FUSE
 * tests do; `remove` detaches it lazily whatever still uses it.
 */

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export interface SmallTmpfs {
  directory: string;
  remove(): void;
}

export function mountSmallTmpfs(size: string): SmallTmpfs {
  const directory = mkdtempSync(join(tmpdir(), 'objmount-tmpfs-'));
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size},mode=0700`, 'objmount-test', directory]);
  return {
    directory,
    remove() {
      try {
        execFileSync('umount', ['-l', directory]);
      } finally {
        rmSync(directory, { recursive: true, force: true });
      }
    },
  };
}
