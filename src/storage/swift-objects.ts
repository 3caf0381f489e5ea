/**
 * How Swift's answers become the store's values: object headers and listing entries into
 * `ObjectInfo`, user metadata to and from `X-Object-Meta-*`, keys into URL paths.
 *
 * ETags: Swift gives a plain object's ETag bare (its MD5) and a large object's quoted (the MD5 of
 * its segments' ETags), and a listing gives a plain object's `hash` and an SLO's `slo_etag`. The
 * store always hands them on quoted, as S3 does, so one version has one ETag whichever request
 * saw it; If-Match takes either form.
 *
 * Metadata: mode, uid, gid and mtime go in `X-Object-Meta-Mode`... as on S3 (`x-amz-meta-mode`),
 * so rclone's Swift backend (`X-Object-Meta-Mtime`, seconds with a fraction) reads them too. Swift
 * folds `_` in header names into `-`, and answers with names in Title-Case; names come back
 * lower-cased, with `-`.
 */

import type { IncomingMessage } from 'node:http';

import { type ObjectInfo, type ObjectMetadata, type PutOptions, httpDate } from './object-store.js';

const META = 'x-object-meta-';

/** The content type the swift client, rclone and Swift's own static web pages give a directory marker object. */
export const DIRECTORY_TYPE = 'application/directory';

export function quoted(etag: string | undefined): string {
  if (!etag) return '';
  return etag.startsWith('"') ? etag : `"${etag}"`;
}

/** The path of a key under the container, each segment URL-encoded and the slashes kept. */
export function encodeKey(key: string): string {
  return key.split('/').map(encodeURIComponent).join('/');
}

export function metadataHeaders(metadata: ObjectMetadata | undefined): Record<string, string> {
  const headers: Record<string, string> = {};
  for (const [name, value] of Object.entries(metadata ?? {})) headers[`${META}${name.toLowerCase()}`] = value;
  return headers;
}

/** The headers of an object written with `options`: its user metadata and content type. */
export function objectHeaders(options: PutOptions): Record<string, string> {
  return { ...metadataHeaders(options.metadata), ...(options.contentType ? { 'content-type': options.contentType } : {}) };
}

export function metadataOf(response: IncomingMessage): ObjectMetadata {
  const metadata: ObjectMetadata = {};
  for (const [name, value] of Object.entries(response.headers)) {
    if (name.startsWith(META) && value !== undefined) metadata[name.slice(META.length)] = Array.isArray(value) ? value.join(',') : value;
  }
  return metadata;
}

/** The object's info from a HEAD or GET answer. `size` is the whole object's (a ranged GET's Content-Range says it). */
export function infoOf(key: string, response: IncomingMessage): ObjectInfo {
  const range = response.headers['content-range'];
  const size = range ? Number(range.split('/')[1]) : Number(response.headers['content-length'] ?? 0);
  return {
    key,
    size,
    etag: quoted(response.headers.etag),
    lastModified: lastModifiedOf(response),
    metadata: metadataOf(response),
    contentType: response.headers['content-type'],
    readAt: httpDate(response.headers.date),
  };
}

/**
 * X-Timestamp (seconds with microseconds) where Swift sends it, so a HEAD and a listing give the
 * same instant; Last-Modified (whole seconds) otherwise.
 */
function lastModifiedOf(response: IncomingMessage): Date {
  const timestamp = Number(response.headers['x-timestamp']);
  if (Number.isFinite(timestamp) && timestamp > 0) return new Date(Math.round(timestamp * 1000));
  const text = response.headers['last-modified'];
  return text ? new Date(text) : new Date(0);
}

/** What the store remembers of a key, to spare a request before writes and deletes. */
export type ObjectKind = 'slo' | 'plain' | 'absent';

export function kindOf(response: IncomingMessage): ObjectKind {
  return String(response.headers['x-static-large-object'] ?? '').toLowerCase() === 'true' ? 'slo' : 'plain';
}

/** An entry of a JSON container listing. */
export interface ListingEntry {
  name?: string;
  subdir?: string;
  bytes?: number;
  hash?: string;
  slo_etag?: string;
  content_type?: string;
  last_modified?: string;
}

export function infoOfEntry(entry: ListingEntry): ObjectInfo {
  return {
    key: entry.name!,
    size: entry.bytes ?? 0,
    etag: quoted(entry.slo_etag ?? entry.hash),
    // Swift's listing times are UTC without a zone.
    lastModified: entry.last_modified
      ? new Date(/[zZ]|[+-]\d\d:?\d\d$/.test(entry.last_modified) ? entry.last_modified : `${entry.last_modified}Z`)
      : new Date(0),
    contentType: entry.content_type,
  };
}

/** A directory marker object of the Swift tools: `dir` (no slash) of type application/directory. */
export function isDirectoryObject(key: string, contentType: string | undefined): boolean {
  return !key.endsWith('/') && (contentType ?? '').split(';')[0]!.trim().toLowerCase() === DIRECTORY_TYPE;
}

/** A segment's container and object, from a manifest path `/container/object`. */
export function splitSegmentPath(path: string): { container: string; object: string } | undefined {
  const match = /^\/?([^/]+)\/(.+)$/.exec(path);
  return match ? { container: match[1]!, object: match[2]! } : undefined;
}
