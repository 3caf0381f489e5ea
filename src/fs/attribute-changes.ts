/**
 * chmod, chown and utimens: a change of a path's metadata, made where that path's state lives —
 * - the mount root: it has no object, so the change lasts as long as the mount;
 * - an open file: saved with its content at flush, or now when it has no unsaved content;
 * - a directory in async mode: its marker (an empty object) journaled with the change and PUT in
 *   the background (Committer.saveDirectoryLater), so `tar x`'s times and mode of a directory
 *   wait for no request, and a mkdir's marker not yet sent carries them in its one PUT;
 * - otherwise the object copied onto itself with the new metadata (an implicit directory gets
 *   its marker PUT), which returns once the store has it.
 */

import type { ObjectStore, WrittenObject } from '../storage/object-store.js';
import { type Attributes, contentTypeOf, metadataOf } from './attributes.js';
import type { Namespace } from './namespace.js';
import type { OpenFileTable } from './open-files.js';
import type { Committer } from './write/committer.js';

export interface AttributeChangesOptions {
  writeMode: 'sync' | 'async';
  /** Wall clock, for the ctime a change sets. */
  now: () => number;
  /** A new staging file's path (a directory's marker needs an empty one in async mode). */
  stagingPath: () => string;
}

export class AttributeChanges {
  constructor(
    private readonly store: ObjectStore,
    private readonly namespace: Namespace,
    private readonly openFiles: OpenFileTable,
    private readonly committer: Committer,
    private readonly options: AttributeChangesOptions,
  ) {}

  /** Makes `change` to the attributes of `path` (and sets its ctime), and saves them. */
  async change(path: string, change: (attrs: Attributes) => void): Promise<void> {
    const changeNow = (attrs: Attributes) => {
      change(attrs);
      attrs.ctimeMs = this.options.now();
    };
    if (path === '/') return changeNow(this.namespace.rootAttrs);
    const open = this.openFiles.get(path);
    // A directory's marker waiting to be saved (async mode): saved again with the change.
    if (open?.attrs.kind === 'directory') return this.committer.saveDirectoryLater(path, open, changeNow, this.options.stagingPath());
    if (open) {
      changeNow(open.attrs);
      open.metadataDirty = true;
      // A file with unsaved content gets its metadata at flush; a clean one right away.
      if (!open.dirty) await this.committer.commit(open);
      return;
    }
    const node = await this.namespace.resolve(path);
    if (node.attrs.kind === 'directory' && this.options.writeMode === 'async') {
      return this.committer.saveDirectoryLater(path, node, changeNow, this.options.stagingPath());
    }
    const attrs = { ...node.attrs };
    changeNow(attrs);
    const options = { metadata: metadataOf(attrs), contentType: node.contentType ?? contentTypeOf(attrs.kind) };
    let written: WrittenObject;
    if (attrs.kind === 'directory') {
      const dirKey = this.namespace.dirKey(path);
      written = await this.namespace.callStore(path, () =>
        node.explicit ? this.store.copy(dirKey, dirKey, options) : this.store.put(dirKey, Buffer.alloc(0), options),
      );
    } else {
      const key = this.namespace.key(path);
      written = await this.namespace.callStore(path, () => this.store.copy(key, key, options));
    }
    this.namespace.wrote(path, { ...node, attrs, explicit: attrs.kind === 'directory' || node.explicit }, written, options);
  }
}
