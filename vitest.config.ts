import { defineConfig } from 'vitest/config';

export default defineConfig({
  test: {
    include: ['test/**/*.test.ts'],
    // FUSE integration tests mount real file systems: run files one at a time so two mounts never
    // race for the same CPU-starved s3rver, and give store round trips room on a 2-core machine.
    fileParallelism: false,
    testTimeout: 60_000,
    hookTimeout: 60_000,
    setupFiles: ['test/helpers/setup-env.ts'],
    globalSetup: ['test/helpers/build.ts'],
  },
});
