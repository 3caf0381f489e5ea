/**
 * The parts of s3rver 3.7.1 that local-s3-server.ts and its fixes use: CommonJS and untyped, so
 * loaded with `require` and given the types they are used with here.
 */

import type { ReadStream } from 'node:fs';
import type { IncomingMessage, Server } from 'node:http';
import { createRequire } from 'node:module';

export interface Metadata {
  etag: string;
  'last-modified': string;
  'content-length': number;
  'x-amz-storage-class'?: string;
}
export interface Store {
  getBucket(bucket: string): Promise<object | null>;
  getBucketPath(bucket: string): string;
  getMetadata(bucket: string, key: string): Promise<Metadata>;
  getResourcePath(bucket: string, key: string | undefined, resource: string): string;
  deleteObject(bucket: string, key: string): Promise<void>;
  copyObject(srcBucket: string, srcKey: string, destBucket: string, destKey: string, replacementMetadata?: object): Promise<Metadata>;
  getObject(bucket: string, key: string, options?: { start?: number; end?: number }): Promise<S3ObjectModel | null>;
  putPart(bucket: string, uploadId: string, partNumber: number, content: NodeJS.ReadableStream): Promise<{ md5: string; size: number }>;
}
export interface S3ObjectModel {
  range?: { start: number; end: number };
  content: ReadStream | null;
}
export interface Context {
  method: string;
  path: string;
  originalUrl: string;
  query: Record<string, string | string[] | undefined>;
  headers: Record<string, string | string[] | undefined>;
  req: IncomingMessage;
  params?: Record<string, string>;
  /** s3rver's: `vhost` is set when the bucket came from the Host header. */
  state: { vhost?: boolean };
  store: Store;
  status: number;
  body: unknown;
  get(header: string): string;
}
export type Next = () => Promise<void>;
export type Middleware = (ctx: Context, next: Next) => Promise<void>;
export interface S3rverApp {
  middleware: Middleware[];
  httpServer?: Server;
  run(): Promise<{ port: number }>;
  close(): Promise<void>;
}

export const require = createRequire(import.meta.url);
export const S3rver = require('s3rver') as new (options: object) => S3rverApp;
export const FilesystemStore = require('s3rver/lib/stores/filesystem.js') as {
  encodeKeyPath(key: string): string;
  decodeKeyPath(path: string): string;
  prototype: Store;
};
export const S3Object = require('s3rver/lib/models/object.js') as new (
  bucket: string,
  key: string,
  content: ReadStream | null,
  metadata: Metadata,
) => S3ObjectModel;
export const S3Error = require('s3rver/lib/models/error.js') as new (code: string, message: string, detail?: object) => Error;
export const AWSAccount = require('s3rver/lib/models/account.js') as {
  new (id: number, name: string): { createKeyPair(accessKeyId: string, secretAccessKey: string): void };
  registry: Map<string, { accessKeys: Map<string, string> }>;
};
export const authenticate = (require('s3rver/lib/middleware/authentication.js') as () => Middleware)();
/** Query parameters that select a sub-resource (?uploads, ?tagging...), as s3rver routes them. */
export const SUBRESOURCES: string[] = [
  ...(require('s3rver/lib/controllers/bucket.js') as { METHODS: string[] }).METHODS,
  ...(require('s3rver/lib/controllers/object.js') as { METHODS: string[] }).METHODS,
];

export const XMLNS = 'http://s3.amazonaws.com/doc/2006-03-01/';
export const OBJECT_SUFFIX = '._S3rver_object';
export const UPLOADS_DIR = '._S3rver_uploads';
export function queryParam(ctx: Context, name: string): string | undefined {
  const value = ctx.query[name];
  return Array.isArray(value) ? value[0] : value;
}

export function unquote(etag: string): string {
  return etag.replace(/"/g, '');
}
