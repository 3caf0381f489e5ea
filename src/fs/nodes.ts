/**
 * The entries that are a name and metadata only: symlinks (the target is the object's body,
 * as s3fs stores it) and what mknod(2) makes (FIFOs, sockets, devices and empty files: an empty
 * object whose mode carries the type, a device's number in the metadata too). Each is made the
 * same way: a new object put whole, then cached complete. What a FIFO or socket carries, and
 * what a device is, stays with the kernel of whoever opens it.
 */

import type { ObjectStore } from '../storage/object-store.js';
import {
  type AttributeDefaults,
  type Attributes,
  MAX_RDEV,
  type Owner,
  S_IFMT,
  S_IFREG,
  contentTypeOf,
  kindOfMode,
  metadataOf,
  newAttributes,
} from './attributes.js';
import type { Cancellation } from './cancellation.js';
import { FsError } from './errors.js';
import type { Namespace } from './namespace.js';

export class Nodes {
  constructor(
    private readonly store: ObjectStore,
    private readonly namespace: Namespace,
    private readonly defaults: AttributeDefaults,
    private readonly now: () => number,
  ) {}

  /** A new symlink, owned by `owner` (FUSE's caller; default: the mount's defaults). */
  async symlink(target: string, path: string, owner?: Owner): Promise<void> {
    const key = this.namespace.checkedKey(path);
    const attrs = newAttributes('symlink', 0o777, this.defaults, this.now(), owner);
    const body = Buffer.from(target, 'utf8');
    attrs.size = body.length;
    await this.make(path, key, attrs, body, target);
  }

  async readlink(path: string, cancel?: Cancellation): Promise<string> {
    const node = await this.namespace.resolve(path, cancel);
    if (node.attrs.kind !== 'symlink') throw new FsError('EINVAL', `${path}: not a symbolic link`);
    if (node.target !== undefined) return node.target;
    const { body } = await this.namespace.callStore(path, () => this.store.get(this.namespace.key(path), { signal: cancel?.signal }));
    node.target = body.toString('utf8');
    return node.target;
  }

  /** mknod(2): a FIFO, socket (a bound unix socket's name), device node or empty file, owned by `owner`. */
  async mknod(path: string, mode: number, rdev: number, owner?: Owner): Promise<void> {
    const key = this.namespace.checkedKey(path);
    // mknod(2) takes a type of 0 as a regular file.
    const typed = (mode & S_IFMT) === 0 ? S_IFREG | mode : mode;
    const kind = kindOfMode(typed);
    if (kind !== 'file' && kind !== 'special') throw new FsError('EINVAL', `${path}: mknod makes files, FIFOs, sockets and devices only`);
    if (!Number.isInteger(rdev) || rdev < 0 || rdev > MAX_RDEV) throw new FsError('EINVAL', `${path}: device number ${rdev} out of range`);
    await this.make(path, key, newAttributes(kind, typed, this.defaults, this.now(), owner, rdev), Buffer.alloc(0));
  }

  /** Puts the new entry `path` (EEXIST if there is one) and caches it complete. */
  private async make(path: string, key: string, attrs: Attributes, body: Buffer, target?: string): Promise<void> {
    if (await this.namespace.tryResolve(path)) throw new FsError('EEXIST', `${path}: already exists`);
    this.namespace.names.appeared(path);
    const { etag } = await this.namespace.callStore(path, () =>
      this.store.put(key, body, { metadata: metadataOf(attrs), contentType: contentTypeOf(attrs.kind) }),
    );
    this.namespace.cache.setNode(path, { attrs, etag, explicit: false, complete: true, target });
  }
}
