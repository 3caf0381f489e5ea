// Vitest global teardown: whatever a test did, no mount of this run outlives it, nor its files.
import { execFileSync } from 'node:child_process';
import { readFileSync, rmSync } from 'node:fs';

export default function teardown(): void {
  const runDir = process.env.OBJMOUNT_TEST_RUN_DIR;
  if (!runDir) return;
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || !fields[dash + 1]?.startsWith('fuse')) continue;
    const mountpoint = fields[4]!;
    if (!mountpoint.startsWith(`${runDir}/`)) continue;
    process.stderr.write(`teardown: a test left ${mountpoint} mounted; detaching it\n`);
    try {
      execFileSync('fusermount3', ['-uz', mountpoint]);
    } catch {
      // already gone
    }
  }
  rmSync(runDir, { recursive: true, force: true });
}
