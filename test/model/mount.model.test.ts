/**
 * Model-based test (fast-check `fc.commands`): random sequences of file operations applied to a
 * real objmount mount and to a local directory, compared after every step: the same result or
 * the same error code, the same contents and listings. A failure shrinks to a small sequence,
 * kept as a named regression test (mount.test.ts, "writes a file again while its last handle is
 * being released"). The suite runs it briefly; `scripts/test-model` runs it for longer.
 */

import { appendFileSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmdirSync, statSync, truncateSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type TestMount, mountBucket } from '../helpers/objmount.js';

const RUNS = Number(process.env.OBJMOUNT_MODEL_RUNS ?? 12);
let server: LocalS3Server;
let mount: TestMount;
let local: string;
let run = 0;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: ['model'] });
  mount = await mountBucket(server.endpoint, 's3://model');
  local = mkdtempSync(join(tmpdir(), 'objmount-model-'));
});

afterAll(async () => {
  // What the daemon said about failed operations, for whoever reads a failure.
  if (process.env.DEBUG_MODEL) console.log(readFileSync(mount.logFile, 'utf8').split('\n').filter((l) => /"warn"|"error"/.test(l)).slice(0, 8).join('\n'));
  await mount?.unmount();
  await server?.close();
});

/** Each run works in a fresh directory on both sides. */
interface World {
  real: string;
  model: string;
}

const names = fc.constantFrom('a', 'b', 'c', 'd/a', 'd/b', 'e/f/g', 'd', 'e', 'e/f');
const content = fc.uint8Array({ maxLength: 3000 }).map((bytes) => Buffer.from(bytes));

/** Runs `op` on both sides; the outcome (a value or an error code) must be the same. */
function both<T>(world: World, op: (root: string) => T, compare: (a: T, b: T) => void = (a, b) => expect(a).toEqual(b)): void {
  const outcome = (root: string): { value?: T; code?: string } => {
    try {
      return { value: op(root) };
    } catch (error) {
      const e = error as NodeJS.ErrnoException;
      return { code: e.code === 'UNKNOWN' ? `errno ${e.errno}` : (e.code ?? String(error)) };
    }
  };
  const real = outcome(world.real);
  const model = outcome(world.model);
  expect(real.code).toBe(model.code);
  if (real.code === undefined) compare(real.value as T, model.value as T);
}

class Write implements fc.Command<object, World> {
  constructor(readonly path: string, readonly data: Buffer) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => writeFileSync(join(root, this.path), this.data));
  toString = () => `write(${this.path}, ${this.data.length} bytes)`;
}
class Append implements fc.Command<object, World> {
  constructor(readonly path: string, readonly data: Buffer) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => appendFileSync(join(root, this.path), this.data));
  toString = () => `append(${this.path}, ${this.data.length} bytes)`;
}
class Truncate implements fc.Command<object, World> {
  constructor(readonly path: string, readonly size: number) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => truncateSync(join(root, this.path), this.size));
  toString = () => `truncate(${this.path}, ${this.size})`;
}
class Read implements fc.Command<object, World> {
  constructor(readonly path: string) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => readFileSync(join(root, this.path)), (a, b) => expect(a.equals(b)).toBe(true));
  toString = () => `read(${this.path})`;
}
class Stat implements fc.Command<object, World> {
  constructor(readonly path: string) {}
  check = () => true;
  run = (_: object, w: World) =>
    both(w, (root) => {
      const st = statSync(join(root, this.path));
      return { directory: st.isDirectory(), size: st.isDirectory() ? 0 : st.size };
    });
  toString = () => `stat(${this.path})`;
}
class Mkdir implements fc.Command<object, World> {
  constructor(readonly path: string) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => mkdirSync(join(root, this.path)));
  toString = () => `mkdir(${this.path})`;
}
class Rmdir implements fc.Command<object, World> {
  constructor(readonly path: string) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => rmdirSync(join(root, this.path)));
  toString = () => `rmdir(${this.path})`;
}
class Unlink implements fc.Command<object, World> {
  constructor(readonly path: string) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => unlinkSync(join(root, this.path)));
  toString = () => `unlink(${this.path})`;
}
class Rename implements fc.Command<object, World> {
  constructor(readonly from: string, readonly to: string) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => renameSync(join(root, this.from), join(root, this.to)));
  toString = () => `rename(${this.from}, ${this.to})`;
}
class List implements fc.Command<object, World> {
  constructor(readonly path: string) {}
  check = () => true;
  run = (_: object, w: World) => both(w, (root) => readdirSync(join(root, this.path)).sort());
  toString = () => `readdir(${this.path})`;
}

const commands = [
  fc.tuple(names, content).map(([p, d]) => new Write(p, d)),
  fc.tuple(names, content).map(([p, d]) => new Append(p, d)),
  fc.tuple(names, fc.nat({ max: 5000 })).map(([p, n]) => new Truncate(p, n)),
  names.map((p) => new Read(p)),
  names.map((p) => new Stat(p)),
  names.map((p) => new Mkdir(p)),
  names.map((p) => new Rmdir(p)),
  names.map((p) => new Unlink(p)),
  fc.tuple(names, names).map(([a, b]) => new Rename(a, b)),
  fc.constantFrom('.', 'd', 'e', 'e/f').map((p) => new List(p)),
];

describe('the mount behaves like a local directory', () => {
  it(`under random sequences of file operations (${RUNS} runs)`, () => {
    fc.assert(
      fc.property(fc.commands(commands, { maxCommands: 25 }), (cmds) => {
        run += 1;
        const world = { real: join(mount.mountpoint, `run-${run}`), model: join(local, `run-${run}`) };
        mkdirSync(world.real);
        mkdirSync(world.model);
        fc.modelRun(() => ({ model: {}, real: world }), cmds);
      }),
      { numRuns: RUNS },
    );
  });
});
