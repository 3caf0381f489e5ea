// Vitest global setup: the FUSE and CLI tests run the built daemon (dist/), so build it first.
import { execFileSync } from 'node:child_process';

export default function setup(): void {
  execFileSync('npx', ['--no-install', 'tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
}
