/**
 * A promise rejected with no handler in the daemon is logged and counted, not a crash that leaves
 * the mountpoint dead for every user. Checked in a process of its own (vitest reports such a
 * rejection in its own process as a failure).
 */

import { execFile } from 'node:child_process';
import { resolve } from 'node:path';
import { promisify } from 'node:util';

import { describe, expect, it } from 'vitest';

const run = promisify(execFile);
const SERVE = resolve(__dirname, '../../dist/daemon/serve.js');

describe('guardAgainstStrayRejections', () => {
  it('logs each stray rejection with its count, and the process lives on', async () => {
    const script = `
      const { guardAgainstStrayRejections } = await import(${JSON.stringify(SERVE)});
      const lines = [];
      const logger = { debug() {}, info() {}, warn() {}, error: (line) => lines.push(line) };
      const counter = guardAgainstStrayRejections(logger);
      Promise.reject(new Error('forgotten catch'));
      Promise.reject('a string');
      setImmediate(() => setImmediate(() => console.log(JSON.stringify({ count: counter.count, lines }))));
    `;
    const { stdout } = await run(process.execPath, ['--input-type=module', '-e', script]);
    const { count, lines } = JSON.parse(stdout) as { count: number; lines: string[] };
    expect(count).toBe(2);
    expect(lines[0]).toMatch(/^a promise failed with no handler \(1 so far; the mount goes on serving\): Error: forgotten catch/);
    expect(lines[1]).toMatch(/^a promise failed with no handler \(2 so far; the mount goes on serving\): a string$/);
  });
});
