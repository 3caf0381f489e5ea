/**
 * Starts the Cloud Storage emulator (firebase-tools, see test/emulators/gcs/server.cjs) in a child
 * process on 127.0.0.1, with a temporary directory of its own for the objects it stores.
 *
 * A child process, not this one: the FUSE tests make blocking file calls on a mount whose daemon
 * talks to the emulator, which would deadlock if the emulator shared the test's event loop.
 */

import { type ChildProcess, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { createInterface } from 'node:readline';

const EMULATOR_DIR = resolve(__dirname, '../emulators/gcs');

export interface GcsEmulator {
  /** The endpoint to give GcsStore and `objmount mount --endpoint`, e.g. http://127.0.0.1:PORT. */
  endpoint: string;
  port: number;
  close(): Promise<void>;
}

export async function startGcsEmulator(): Promise<GcsEmulator> {
  if (!existsSync(join(EMULATOR_DIR, 'node_modules', 'firebase-tools'))) {
    throw new Error(`the GCS emulator is not installed in ${EMULATOR_DIR}: run scripts/setup`);
  }
  const directory = mkdtempSync(join(tmpdir(), 'gcs-emulator-'));
  const child: ChildProcess = spawn(process.execPath, [join(EMULATOR_DIR, 'server.cjs')], {
    cwd: directory,
    // The emulator keeps objects under $TMPDIR/firebase; HOME keeps firebase-tools' config files
    // out of the user's.
    env: { ...process.env, TMPDIR: directory, HOME: directory, NODE_ENV: 'test' },
    stdio: ['pipe', 'pipe', 'inherit'],
  });
  const port = await new Promise<number>((resolvePort, reject) => {
    const lines = createInterface({ input: child.stdout! });
    lines.once('line', (line) => resolvePort((JSON.parse(line) as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`the GCS emulator exited with code ${code} before listening`)));
    child.once('error', reject);
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    port,
    close: () =>
      new Promise<void>((done) => {
        const finish = () => {
          rmSync(directory, { recursive: true, force: true });
          done();
        };
        if (child.exitCode !== null || child.signalCode !== null) return finish();
        child.once('exit', finish);
        child.kill('SIGTERM');
      }),
  };
}
