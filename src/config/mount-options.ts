/**
 * Every mount option, its type and its default. The CLI fills this from flags; later a config
 * file and the creds store fill it too. Nothing here reads the environment.
 */

export interface MountSource {
  provider: 's3';
  bucket: string;
  /** '' or a prefix ending in '/'. */
  prefix: string;
}

export interface MountOptions {
  source: MountSource;
  mountpoint: string;
  /** Custom endpoint URL for S3-compatible stores. */
  endpoint?: string;
  region: string;
  pathStyle: boolean;
  foreground: boolean;
  /** Defaults for objects without POSIX metadata. */
  uid: number;
  gid: number;
  fileMode: number;
  dirMode: number;
  /** How long file / directory attributes and negative lookups are trusted, seconds. */
  metadataTtlSeconds: number;
  negativeTtlSeconds: number;
  /** Multipart part size in bytes (grown automatically for very large files). */
  partSize: number;
  /** Parts uploaded at once per file. */
  uploadConcurrency: number;
  maxConnections: number;
  /** Let other users access the mount (needs user_allow_other for non-root). */
  allowOther: boolean;
  /** Where files being written are staged; default: a private temp directory. */
  stagingDir?: string;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  logFile?: string;
  debugFuse: boolean;
}

export const MiB = 1024 * 1024;

export const DEFAULTS = {
  region: 'us-east-1',
  fileMode: 0o644,
  dirMode: 0o755,
  metadataTtlSeconds: 1,
  negativeTtlSeconds: 1,
  partSize: 8 * MiB,
  uploadConcurrency: 8,
  maxConnections: 32,
} as const;

export class OptionError extends Error {
  override readonly name = 'OptionError';
}

/** Parses `s3://bucket[/prefix]`. */
export function parseSource(text: string): MountSource {
  const match = /^([a-z0-9]+):\/\/([^/]*)(?:\/(.*))?$/.exec(text);
  if (!match) {
    throw new OptionError(`'${text}' is not a source: write it as s3://bucket or s3://bucket/prefix`);
  }
  const [, scheme, bucket = '', rawPrefix = ''] = match;
  if (scheme !== 's3') {
    throw new OptionError(`'${text}': the ${scheme}:// scheme is not supported yet; use s3://bucket[/prefix]`);
  }
  if (!/^[a-zA-Z0-9._-]{1,255}$/.test(bucket)) {
    throw new OptionError(`'${text}': '${bucket}' is not a valid bucket name`);
  }
  const trimmed = rawPrefix.replace(/^\/+|\/+$/g, '');
  if (trimmed.split('/').some((part) => part === '' && trimmed !== '')) {
    throw new OptionError(`'${text}': the prefix must not contain empty path components ('//')`);
  }
  return { provider: 's3', bucket, prefix: trimmed ? `${trimmed}/` : '' };
}

export function formatSource(source: MountSource): string {
  return `${source.provider}://${source.bucket}${source.prefix ? `/${source.prefix.slice(0, -1)}` : ''}`;
}

/** Parses a size such as 8M, 16MiB, 1048576 into bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!match) throw new OptionError(`'${text}' is not a size: write it like 8M or 16MiB`);
  const power = ' kmgt'.indexOf((match[2] || ' ').toLowerCase());
  return Number(match[1]) * 1024 ** power;
}
