import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { defineConfig } from 'vitest/config';

// Every temporary file of a run (mountpoints, staging, the local S3 server's objects) goes under
// one directory of its own, so the teardown detaches this run's mounts only, never those of
// another run on the same machine, and removes what the run left.
const runDir = mkdtempSync(join(process.env.TMPDIR ?? tmpdir(), 'objmount-run-'));
process.env.OBJMOUNT_TEST_RUN_DIR = runDir;

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // FUSE integration tests mount real file systems: run files one at a time so two mounts never
    // race for the same CPU-starved s3rver, and give store round trips room on a 2-core machine.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    env: { TMPDIR: runDir },
    setupFiles: ['test/helpers/setup-env.ts'],
    globalSetup: ['test/helpers/build.ts'],
  },
});
