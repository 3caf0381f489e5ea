/**
 * Model-based test (fast-check `fc.commands`): random sequences of file operations applied to a
 * real objmount mount and to a local directory, compared after every step: the same result or
 * the same error code, the same contents, listings, modes and times. Some steps change the store
 * behind the mount's back (another client's put or delete), and some unmount and mount again, so
 * what was acknowledged must come back from the store. A failure shrinks to a small sequence,
 * kept as a named regression test (mount.test.ts, "writes a file again while its last handle is
 * being released"). The suite runs it briefly; `scripts/test-model` runs it for longer. The same
 * model runs in process on FileSystem, thousands of sequences a run, with store failures and
 * files held open: test/unit/file-system.model.test.ts.
 */

import {
  appendFileSync,
  chmodSync,
  closeSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  openSync,
  readFileSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  statSync,
  symlinkSync,
  truncateSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
  writeSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';

import { DeleteObjectCommand, PutObjectCommand, type S3Client } from '@aws-sdk/client-s3';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';

import { type LocalS3Server, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { type TestMount, mountBucket } from '../helpers/objmount.js';
import { s3Client } from '../helpers/s3-client.js';

const RUNS = Number(process.env.OBJMOUNT_MODEL_RUNS ?? 12);
const BUCKET = 'model';
/** No metadata caching: a change made by another client shows at the next step. */
const MOUNT_ARGS = ['--metadata-ttl', '0', '--negative-ttl', '0'];
let server: LocalS3Server;
let sdk: S3Client;
let mount: TestMount;
let local: string;
let run = 0;

beforeAll(async () => {
  server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  sdk = s3Client(server.endpoint);
  mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, MOUNT_ARGS);
  local = mkdtempSync(join(tmpdir(), 'objmount-model-'));
});

afterAll(async () => {
  // What the daemon said about failed operations, for whoever reads a failure.
  if (process.env.DEBUG_MODEL)
    console.log(
      readFileSync(mount.logFile, 'utf8')
        .split('\n')
        .filter((l) => /"warn"|"error"/.test(l))
        .slice(0, 8)
        .join('\n'),
    );
  await mount?.unmount();
  sdk?.destroy();
  await server?.close();
});

/** Each run works in a fresh directory on both sides; `prefix` is its key prefix in the store. */
interface World {
  real: string;
  model: string;
  prefix: string;
}

type Command = fc.AsyncCommand<object, World>;

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

class Write implements Command {
  constructor(
    readonly path: string,
    readonly data: Buffer,
  ) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => writeFileSync(join(root, this.path), this.data));
  toString = () => `write(${this.path}, ${this.data.length} bytes)`;
}
class Append implements Command {
  constructor(
    readonly path: string,
    readonly data: Buffer,
  ) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => appendFileSync(join(root, this.path), this.data));
  toString = () => `append(${this.path}, ${this.data.length} bytes)`;
}
class Truncate implements Command {
  constructor(
    readonly path: string,
    readonly size: number,
  ) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => truncateSync(join(root, this.path), this.size));
  toString = () => `truncate(${this.path}, ${this.size})`;
}
class Read implements Command {
  constructor(readonly path: string) {}
  check = () => true;
  run = async (_: object, w: World) =>
    both(
      w,
      (root) => readFileSync(join(root, this.path)),
      (a, b) => expect(a.equals(b)).toBe(true),
    );
  toString = () => `read(${this.path})`;
}
class Stat implements Command {
  constructor(readonly path: string) {}
  check = () => true;
  run = async (_: object, w: World) =>
    both(w, (root) => {
      const st = lstatSync(join(root, this.path));
      return { kind: kindOf(st), size: st.isFile() ? st.size : 0, mode: st.mode & 0o7777 };
    });
  toString = () => `stat(${this.path})`;
}
class Mkdir implements Command {
  constructor(readonly path: string) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => mkdirSync(join(root, this.path)));
  toString = () => `mkdir(${this.path})`;
}
class Rmdir implements Command {
  constructor(readonly path: string) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => rmdirSync(join(root, this.path)));
  toString = () => `rmdir(${this.path})`;
}
class Unlink implements Command {
  constructor(readonly path: string) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => unlinkSync(join(root, this.path)));
  toString = () => `unlink(${this.path})`;
}
class Rename implements Command {
  constructor(
    readonly from: string,
    readonly to: string,
  ) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => renameSync(join(root, this.from), join(root, this.to)));
  toString = () => `rename(${this.from}, ${this.to})`;
}
class List implements Command {
  constructor(readonly path: string) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => readdirSync(join(root, this.path)).sort());
  toString = () => `readdir(${this.path})`;
}

class WriteAt implements Command {
  constructor(
    readonly path: string,
    readonly offset: number,
    readonly data: Buffer,
  ) {}
  check = () => true;
  run = async (_: object, w: World) =>
    both(w, (root) => {
      const fd = openSync(join(root, this.path), 'r+');
      try {
        writeSync(fd, this.data, 0, this.data.length, this.offset);
      } finally {
        closeSync(fd);
      }
    });
  toString = () => `writeAt(${this.path}, ${this.offset}, ${this.data.length} bytes)`;
}
class Symlink implements Command {
  constructor(
    readonly target: string,
    readonly path: string,
  ) {}
  check = () => true;
  run = async (_: object, w: World) => {
    both(w, (root) => symlinkSync(this.target, join(root, this.path)));
    both(w, (root) => readlinkSync(join(root, this.path)));
  };
  toString = () => `symlink(${this.target}, ${this.path})`;
}
class Chmod implements Command {
  constructor(
    readonly path: string,
    readonly mode: number,
  ) {}
  check = () => true;
  run = async (_: object, w: World) => both(w, (root) => chmodSync(join(root, this.path), this.mode));
  toString = () => `chmod(${this.path}, ${this.mode.toString(8)})`;
}
class Utimens implements Command {
  constructor(
    readonly path: string,
    readonly seconds: number,
  ) {}
  check = () => true;
  run = async (_: object, w: World) =>
    both(w, (root) => {
      utimesSync(join(root, this.path), this.seconds, this.seconds);
      return statSync(join(root, this.path)).mtimeMs;
    });
  toString = () => `utimens(${this.path}, ${this.seconds})`;
}
/** Another client puts an object under the run's prefix, where the model can have a file. */
class ExternalPut implements Command {
  constructor(
    readonly path: string,
    readonly data: Buffer,
  ) {}
  check = () => true;
  run = async (_: object, w: World) => {
    const where = join(w.model, this.path);
    if (!isDirectory(dirname(where)) || exists(where)) return; // a file could not appear there
    writeFileSync(where, this.data);
    await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: `${w.prefix}${this.path}`, Body: this.data }));
  };
  toString = () => `externalPut(${this.path}, ${this.data.length} bytes)`;
}
/** Another client deletes a file's object. */
class ExternalDelete implements Command {
  constructor(readonly path: string) {}
  check = () => true;
  run = async (_: object, w: World) => {
    const where = join(w.model, this.path);
    if (!exists(where) || !lstatSync(where).isFile()) return;
    unlinkSync(where);
    await sdk.send(new DeleteObjectCommand({ Bucket: BUCKET, Key: `${w.prefix}${this.path}` }));
  };
  toString = () => `externalDelete(${this.path})`;
}
/** Unmounts and mounts again at the same place: what was acknowledged comes back from the store. */
class Remount implements Command {
  check = () => true;
  run = async () => {
    const at = mount.mountpoint;
    await mount.unmount();
    mount = await mountBucket(server.endpoint, `s3://${BUCKET}`, MOUNT_ARGS, undefined, at);
  };
  toString = () => 'remount()';
}

function exists(path: string): boolean {
  try {
    lstatSync(path);
    return true;
  } catch {
    return false;
  }
}

function isDirectory(path: string): boolean {
  return exists(path) && lstatSync(path).isDirectory();
}

function kindOf(st: ReturnType<typeof lstatSync>): string {
  return st.isDirectory() ? 'directory' : st.isSymbolicLink() ? 'symlink' : 'file';
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
  fc.tuple(names, fc.nat({ max: 4000 }), content).map(([p, o, d]) => new WriteAt(p, o, d)),
  fc.tuple(fc.constantFrom('a', '../x', 'd/a', 'nowhere'), names).map(([t, p]) => new Symlink(t, p)),
  fc.tuple(names, fc.constantFrom(0o600, 0o640, 0o755, 0o700, 0o444)).map(([p, m]) => new Chmod(p, m)),
  fc.tuple(names, fc.integer({ min: 1_000_000_000, max: 1_900_000_000 })).map(([p, t]) => new Utimens(p, t)),
  fc.tuple(names, content).map(([p, d]) => new ExternalPut(p, d)),
  names.map((p) => new ExternalDelete(p)),
  fc.constant(new Remount()),
];

describe('the mount behaves like a local directory', () => {
  it(
    `under random sequences of file operations (${RUNS} runs)`,
    async () => {
      await fc.assert(
        fc.asyncProperty(fc.commands(commands, { maxCommands: 25 }), async (cmds) => {
          run += 1;
          const world = { real: join(mount.mountpoint, `run-${run}`), model: join(local, `run-${run}`), prefix: `run-${run}/` };
          mkdirSync(world.real);
          mkdirSync(world.model);
          await fc.asyncModelRun(() => ({ model: {}, real: world }), cmds);
        }),
        { numRuns: RUNS },
      );
    },
    Math.max(60_000, RUNS * 20_000),
  );
});
