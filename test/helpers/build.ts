// Vitest global setup: the FUSE and CLI tests run the built daemon (dist/), so build it first;
// the returned teardown detaches any mount a failed test left behind.
import { execFileSync } from 'node:child_process';

import teardown from './teardown.js';

export default function setup(): () => void {
  execFileSync('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
  return teardown;
}
