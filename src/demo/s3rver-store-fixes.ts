/**
 * Fixes to s3rver's FilesystemStore (see local-s3-server.ts for the list): key <-> path mapping
 * that holds 255-byte components and 1,024-byte keys (5), deletes that leave directories (9),
 * ranges that read `bytes=0-0` as one byte (13), and copies that are new objects (16). Importing
 * this module installs them.
 */

import { type ReadStream, createReadStream } from 'node:fs';
import { rm, utimes } from 'node:fs/promises';

import { FilesystemStore, type Metadata, S3Object, type Store } from './s3rver-internals.js';

/**
 * Longest path segment written (s3rver appends up to 22 bytes, "._S3rver_metadata.json", and a
 * file name holds 255). A longer key component becomes pieces of at most PIECE_BYTES, each a
 * directory prefixed MORE, the last prefixed LAST. A short component that starts with MARK gets
 * one more MARK, so every segment decodes one way and listings return the exact key.
 */
const MAX_SEGMENT_BYTES = 200;
const PIECE_BYTES = MAX_SEGMENT_BYTES - 2;
const MARK = '\u0001';
const MORE = `${MARK}+`;
const LAST = `${MARK}-`;

export function encodeKeyPath(key: string): string {
  return key.split('/').map(encodeComponent).join('/');
}

function encodeComponent(component: string): string {
  if (Buffer.byteLength(component) <= MAX_SEGMENT_BYTES) return component.startsWith(MARK) ? MARK + component : component;
  const pieces = [''];
  for (const char of component) {
    // by code point, so a character is never cut in two
    if (Buffer.byteLength(pieces[pieces.length - 1]! + char) > PIECE_BYTES) pieces.push('');
    pieces[pieces.length - 1] += char;
  }
  return pieces.map((piece, i) => (i < pieces.length - 1 ? MORE : LAST) + piece).join('/');
}

/** One path segment's part of the key; `continues` when the component goes on in a sub-directory. */
export function decodeSegment(segment: string): { text: string; continues: boolean } {
  if (segment.startsWith(MORE)) return { text: segment.slice(MORE.length), continues: true };
  if (segment.startsWith(LAST)) return { text: segment.slice(LAST.length), continues: false };
  return { text: segment.startsWith(MARK) ? segment.slice(MARK.length) : segment, continues: false };
}

export function decodeKeyPath(path: string): string {
  const segments = path.split('/');
  return segments
    .map((segment, i) => {
      const { text, continues } = decodeSegment(segment);
      return continues || i === segments.length - 1 ? text : `${text}/`;
    })
    .join('');
}

FilesystemStore.encodeKeyPath = encodeKeyPath;
FilesystemStore.decodeKeyPath = decodeKeyPath;

// 9. Remove the object's files only: see the header comment.
FilesystemStore.prototype.deleteObject = async function deleteObject(this: Store, bucket: string, key: string) {
  await Promise.all(
    ['object', 'object.md5', 'metadata.json', 'tagging.xml'].map((resource) =>
      rm(this.getResourcePath(bucket, key, resource), { force: true }),
    ),
  );
};

// 13. Ranges: s3rver read `bytes=0-0` (end 0) as "to the end". Its getObject, with that fixed.
interface RangeOptions {
  start?: number;
  end?: number;
}
FilesystemStore.prototype.getObject = async function getObject(this: Store, bucket: string, key: string, options?: RangeOptions) {
  let metadata: Metadata;
  try {
    metadata = await this.getMetadata(bucket, key);
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return null;
    throw error;
  }
  const lastByte = Math.max(0, Number(metadata['content-length']) - 1);
  const ranged = options?.start !== undefined || options?.end !== undefined;
  const range = { start: options?.start ?? 0, end: Math.min(options?.end ?? Infinity, lastByte) };
  if (range.start < 0 || range.end < range.start) {
    const unsatisfiable = new S3Object(bucket, key, null, metadata);
    if (ranged) unsatisfiable.range = range;
    return unsatisfiable;
  }
  const content = await new Promise<ReadStream>((resolve, reject) => {
    const stream = createReadStream(this.getResourcePath(bucket, key, 'object'), range)
      .on('error', reject)
      .on('open', () => resolve(stream));
  }).catch((error: NodeJS.ErrnoException) => {
    if (error.code === 'ENOENT') return null; // deleted meanwhile
    throw error;
  });
  if (content === null) return null;
  const object = new S3Object(bucket, key, content, metadata);
  if (ranged) object.range = range;
  return object;
};

// 16. A copy is a new object with a new Last-Modified (S3's time of the copy). s3rver's is its
// file's mtime, which a copy onto itself (a chmod: new metadata, same bytes) left unchanged.
const copyObject = FilesystemStore.prototype.copyObject;
FilesystemStore.prototype.copyObject = async function copyObjectNow(this: Store, ...args: Parameters<Store['copyObject']>) {
  const [, , destBucket, destKey] = args;
  await copyObject.apply(this, args);
  const now = new Date();
  await utimes(this.getResourcePath(destBucket, destKey, 'object'), now, now);
  return this.getMetadata(destBucket, destKey);
};
