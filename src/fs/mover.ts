/**
 * Renames in the store, which has none: a file is copied to its new key and the old one deleted;
 * a directory is every key under it copied (16 at a time) and then deleted. Files open at the old
 * names move with them in the open-file table, pinned to the copies' ETags, so their handles go
 * on reading and writing; a file open at the replaced name keeps its bytes for its handles.
 * `rename` checks the operation (kinds, EINVAL, ENOTDIR...) first.
 */

import PQueue from 'p-queue';

import type { ObjectStore } from '../storage/object-store.js';
import { FsError } from './errors.js';
import { MAX_KEY_BYTES, type Namespace } from './namespace.js';
import type { OpenFile } from './open-file.js';
import type { OpenFileTable } from './open-files.js';
import type { Committer } from './write/committer.js';

export class Mover {
  constructor(
    private readonly store: ObjectStore,
    private readonly namespace: Namespace,
    private readonly openFiles: OpenFileTable,
    private readonly committer: Committer,
  ) {}

  /** rename(2): checks the kinds (EINVAL, ENOTDIR, EISDIR, ENOTEMPTY) and moves `from` to `to`. */
  async rename(from: string, to: string): Promise<void> {
    if (from === to) return;
    if (from === '/' || to === '/') throw new FsError('EBUSY', 'the mount root cannot be renamed');
    this.namespace.checkedKey(to);
    const source = this.openFiles.get(from)?.attrs ?? (await this.namespace.resolve(from)).attrs;
    const target = this.openFiles.get(to)?.attrs ?? (await this.namespace.tryResolve(to))?.attrs;
    this.namespace.names.appeared(to);
    // A moved tree is looked up in the store again (its names are not tracked where it lands).
    this.namespace.names.forgetBelow(from);
    this.namespace.names.forgetBelow(to);
    if (source.kind === 'directory') {
      if (to.startsWith(`${from}/`)) throw new FsError('EINVAL', `${to}: cannot move a directory into itself`);
      if (target && target.kind !== 'directory') throw new FsError('ENOTDIR', `${to}: not a directory`);
      // The directory replaced goes only once the move has succeeded: a failed copy leaves both.
      const replaced = target ? await this.namespace.resolve(to) : undefined;
      if (replaced) {
        await this.namespace.checkEmpty(to);
        await this.committer.saveDirectoryNow(to); // a marker waiting (async mode) is in the store first
      }
      const markerMoved = await this.moveDirectory(from, to);
      // Its marker, unless the moved directory's took its place.
      if (replaced?.explicit && !markerMoved) {
        const toKey = this.namespace.dirKey(to);
        await this.namespace.callStore(to, () => this.store.deleteMany([toKey]));
      }
    } else {
      if (target?.kind === 'directory') throw new FsError('EISDIR', `${to}: is a directory`);
      await this.moveFile(from, to);
    }
    await this.namespace.keepParent(from);
  }

  /**
   * Before a file's object goes (unlink, or a rename over it): handles still open go on reading
   * the whole file from its staging copy, as POSIX keeps it readable; a file only read so far is
   * downloaded now. Call inside the file's `exclusive`.
   */
  async keepForHandles(file: OpenFile): Promise<void> {
    if (!file.staged && !(file.refs > 0 && file.existsInStore)) return;
    await this.namespace.callStore(file.path, () => file.stage(this.store, file.attrs.size, 0));
    await this.namespace.callStore(file.path, () => file.fill(this.store, 0));
  }

  /** Moves a file's object (copy, then delete) and its open file, if any, to `to`. */
  async moveFile(from: string, to: string): Promise<void> {
    const open = this.openFiles.get(from);
    const fromKey = this.namespace.key(from);
    const toKey = this.namespace.key(to);
    const replaced = this.openFiles.get(to);
    if (replaced && replaced !== open) await replaced.exclusive(() => this.keepForHandles(replaced));
    const move = async () => {
      if (open) await this.committer.commitNow(open);
      const { etag } = await this.namespace.callStore(from, () => this.store.copy(fromKey, toKey));
      // A copy can have a new ETag (on S3, always for a multipart object); reads are pinned to it.
      if (open) open.etag = etag;
      await this.namespace.callStore(from, () => this.store.deleteMany([fromKey]));
    };
    if (open) await open.exclusive(move);
    else await move();
    if (replaced) {
      // The replaced file lives on only in its handles; the name now belongs to the moved file.
      replaced.unlinked = true;
      this.openFiles.delete(to);
    }
    this.openFiles.delete(from);
    if (open) {
      open.path = to;
      open.key = toKey;
      this.openFiles.set(to, open);
    }
    this.namespace.cache.setMissing(from);
    this.namespace.cache.delete(to);
    // The replaced file's journal record (async mode) must not bring it back at the next mount.
    if (replaced && replaced !== open) await this.committer.dropReplaced(replaced);
  }

  /**
   * Moves every key under directory `from` (16 copies at a time, then one delete) and the files
   * open below it. Directory markers waiting to be saved (async mode) are saved first, and move
   * as the keys they then are. Returns whether `from` had a marker (`to/` is now that marker).
   */
  async moveDirectory(from: string, to: string): Promise<boolean> {
    const markerOf = this.openFiles.get(from);
    const waiting = [...this.openFiles.files()].filter((f) => f.path.startsWith(`${from}/`));
    for (const file of markerOf ? [markerOf, ...waiting] : waiting) await this.committer.commit(file);
    for (const file of markerOf ? [markerOf, ...waiting] : waiting) {
      if (file.attrs.kind === 'directory') await this.committer.forgetIfDone(file);
    }
    const below = waiting.filter((f) => f.attrs.kind !== 'directory');
    const fromKey = this.namespace.dirKey(from);
    const toKey = this.namespace.dirKey(to);
    const keys: string[] = [];
    for await (const page of this.namespace.pages(from, { prefix: fromKey })) {
      for (const object of page.objects) keys.push(object.key);
    }
    // A marker the listing does not show (see rmdir) is moved too, so an empty directory moves.
    const known = this.namespace.cache.get(from);
    if (known?.exists && known.node.explicit && !keys.includes(fromKey)) keys.unshift(fromKey);
    const tooLong = keys.find((k) => Buffer.byteLength(toKey + k.slice(fromKey.length)) > MAX_KEY_BYTES);
    if (tooLong) throw new FsError('ENAMETOOLONG', `${to}: '${tooLong}' would exceed ${MAX_KEY_BYTES} bytes`);
    const queue = new PQueue({ concurrency: 16 });
    const copied = await Promise.all(
      keys.map((k) => queue.add(() => this.namespace.callStore(from, () => this.store.copy(k, toKey + k.slice(fromKey.length))))),
    );
    const copiedEtags = new Map(keys.map((k, i) => [k, copied[i]!.etag]));
    await this.namespace.callStore(from, () => this.store.deleteMany(keys));
    for (const file of below) {
      this.openFiles.delete(file.path);
      file.etag = copiedEtags.get(file.key) ?? file.etag;
      file.path = to + file.path.slice(from.length);
      file.key = this.namespace.key(file.path);
      this.openFiles.set(file.path, file);
    }
    this.namespace.cache.deleteTree(from);
    this.namespace.cache.deleteTree(to);
    this.namespace.cache.setMissing(from);
    return keys.includes(fromKey);
  }
}
