import { defineConfig } from 'vitest/config';

import base from './vitest.config.js';

// The Swift tests that need Keystone (scripts/test-keystone): apart from the suite, because
// setting Keystone up (db_sync, fernet_setup, bootstrap) costs some 15 s of CPU each run
// (minutes on a loaded machine, hence the long hook timeout).
// (mergeConfig would add to base's include rather than replace it.)
export default defineConfig({
  ...base,
  test: { ...base.test, include: ['test/keystone/**/*.keystone.ts'], hookTimeout: 600_000, testTimeout: 180_000 },
});
