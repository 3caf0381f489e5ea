/**
 * Starts the Cloud Storage emulator (firebase-tools, see test/emulators/gcs/server.cjs) in a child
 * process on 127.0.0.1, with a temporary directory of its own for the objects it stores.
 *
 * A child process, not this one: the FUSE tests make blocking file calls on a mount whose daemon
 * talks to the emulator, which would deadlock if the emulator shared the test's event loop.
 */

import { type ChildProcess, fork } from 'node:child_process';
import { closeSync, existsSync, mkdtempSync, openSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

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
  // Its output goes to a file, never to a pipe this process reads: the tests block their event
  // loop in file calls on a mount, and an emulator blocked on a full pipe would never answer.
  const log = openSync(join(directory, 'emulator.log'), 'a');
  const child: ChildProcess = fork(join(EMULATOR_DIR, 'server.cjs'), [], {
    cwd: directory,
    // The emulator keeps objects under $TMPDIR/firebase; HOME keeps firebase-tools' config files
    // out of the user's.
    env: { ...process.env, TMPDIR: directory, HOME: directory, NODE_ENV: 'test' },
    stdio: ['pipe', log, log, 'ipc'],
  });
  closeSync(log);
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once('message', (message) => resolvePort((message as { port: number }).port));
    child.once('exit', (code) =>
      reject(new Error(`the GCS emulator exited with code ${code} before listening; see ${join(directory, 'emulator.log')}`)),
    );
    child.once('error', reject);
  });
  child.disconnect();
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

/**
 * The compose shim (gcs-compose-shim.mjs) in front of an emulator, in a process of its own, for
 * FUSE tests of composite uploads. Not GCS's compose: see the shim.
 */
export async function startComposeShimProcess(emulatorEndpoint: string): Promise<{ endpoint: string; close(): Promise<void> }> {
  const child = fork(resolve(__dirname, 'gcs-compose-shim.mjs'), [emulatorEndpoint], { stdio: ['pipe', 'inherit', 'inherit', 'ipc'] });
  const port = await new Promise<number>((resolvePort, reject) => {
    child.once('message', (message) => resolvePort((message as { port: number }).port));
    child.once('exit', (code) => reject(new Error(`the compose shim exited with code ${code} before listening`)));
  });
  return {
    endpoint: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((done) => {
        if (child.exitCode !== null || child.signalCode !== null) return done();
        child.once('exit', () => done());
        child.kill('SIGTERM');
      }),
  };
}
