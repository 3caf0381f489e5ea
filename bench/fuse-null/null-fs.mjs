/**
 * The null file system of null.c, in JS, on one of the bindings, for bench/fuse-null.mjs:
 *   node null-fs.mjs fuse3|fuse-native MOUNTPOINT TIMEOUT_SECONDS
 * Prints "ready" once mounted; on SIGTERM unmounts and exits.
 */

import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const [binding, mountpoint, timeout] = process.argv.slice(2);
const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
const ZERO_SIZE = 2 * 1024 ** 3;
const ENOENT = -2;
const times = { mtime: 0, atime: 0, ctime: 0 };

const ops = {
  getattr(path, cb) {
    if (path === '/') return cb(0, { mode: 0o40755, nlink: 2, ...times });
    if (path === '/zero') return cb(0, { mode: 0o100644, size: ZERO_SIZE, ...times });
    if (path === '/null' || (path[1] === 'e' && Number(path.slice(2)) < 1_000_000)) return cb(0, { mode: 0o100644, size: 0, ...times });
    cb(ENOENT);
  },
  open: (_path, _flags, cb) => cb(0, 0),
  truncate: (_path, _size, cb) => cb(0),
  read(_path, _fh, buffer, length, position, cb) {
    const n = Math.max(0, Math.min(length, ZERO_SIZE - position));
    buffer.fill(0, 0, n);
    cb(n);
  },
  write: (_path, _fh, _buffer, length, _position, cb) => cb(length),
};

let session;
if (binding === 'fuse3') {
  const { FuseSession } = await import(join(root, 'dist/fuse/binding.js'));
  session = new FuseSession(mountpoint, ops, {
    fsName: 'null-fuse3',
    allowOther: false,
    attrTimeoutSeconds: Number(timeout),
    debug: false,
  });
  await session.mount();
} else {
  const require = createRequire(import.meta.url);
  const Fuse = require('fuse-native');
  // As objmount used it: 128 KiB writes (libfuse 2.9's ceiling), no operation timeout.
  // (Its attrTimeout option drops a 0, so the timeouts are spelled out.)
  const fuse = new Fuse(mountpoint, ops, { timeout: false });
  fuse._fuseOptions = () =>
    `-ofsname=null-fuse-native,big_writes,max_write=131072,attr_timeout=${timeout},entry_timeout=${timeout},negative_timeout=0`;
  await new Promise((resolve, reject) => fuse.mount((error) => (error ? reject(error) : resolve())));
  session = { unmount: () => new Promise((resolve) => fuse.unmount(() => resolve())) };
}
process.once('SIGTERM', () => void session.unmount().then(() => process.exit(0)));
console.log('ready');
