// Vitest global teardown: whatever a test did, no objmount mount outlives the suite.
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';

export default function teardown(): void {
  for (const line of readFileSync('/proc/self/mountinfo', 'utf8').split('\n')) {
    const fields = line.split(' ');
    const dash = fields.indexOf('-');
    if (dash < 0 || fields[dash + 1] !== 'fuse.objmount') continue;
    const mountpoint = fields[4]!;
    if (!mountpoint.startsWith('/tmp/objmount-')) continue;
    process.stderr.write(`teardown: a test left ${mountpoint} mounted; detaching it\n`);
    try {
      execFileSync('fusermount3', ['-uz', mountpoint]);
    } catch {
      // already gone
    }
  }
}
