/**
 * Every mount option, its type and its default. The CLI fills this from flags; later a config
 * file and the creds store fill it too. Nothing here reads the environment.
 */

export interface MountSource {
  /** s3://, az://, gs:// or swift://: which kind of store, and so which backend serves the mount. */
  provider: 's3' | 'az' | 'gs' | 'swift';
  /** The storage account of an `az://` source; absent otherwise. */
  account?: string;
  /** The bucket, or an Azure or Swift container. */
  bucket: string;
  /** '' or a prefix ending in '/'. */
  prefix: string;
}

export interface MountOptions {
  /** What to mount; unused in the root view. */
  source: MountSource;
  /** The root view: every paired bucket of the stored credentials under one mountpoint. */
  rootView?: boolean;
  mountpoint: string;
  /** Custom endpoint URL for S3-compatible stores (gs://: a custom JSON API endpoint, e.g. an emulator). */
  endpoint?: string;
  /** gs:// only: the service-account JSON key, and where its path came from (for messages). */
  keyFile?: { path: string; from: '--key-file' | 'GOOGLE_APPLICATION_CREDENTIALS' };
  /** Given on the command line; else the stored credential's, else `defaultRegion`. */
  region?: string;
  /** The region when neither the command line nor a stored credential names one. */
  defaultRegion: string;
  /** Given on the command line; else the stored credential's, else on with a custom endpoint. */
  pathStyle?: boolean;
  /** Given on the command line; else the stored credential's, else 'v4'. */
  signatureVersion?: 'v2' | 'v4';
  /** CA certificates (PEM file) trusted besides the system's (--ca-bundle); else the stored credential's. */
  caBundle?: string;
  /** $AWS_CA_BUNDLE: the bundle when neither the command line nor a stored credential names one. */
  environmentCaBundle?: string;
  /** Skip TLS certificate verification. */
  insecure: boolean;
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
  /** Most parts one multipart upload may have: 10,000 on S3, fewer on some stores. */
  maxUploadParts: number;
  maxConnections: number;
  /** The deadline of a store request that moves no object data (head, list, delete), seconds. */
  requestTimeoutSeconds: number;
  /** The slowest a data request may move bytes: its deadline grows by its size at this rate, bytes/s. */
  minTransferRate: number;
  /** Objects are read and cached in blocks of this many bytes. */
  blockSize: number;
  /** Largest read-ahead window of a file read sequentially, bytes. */
  readAhead: number;
  /** One budget for cached blocks and read-ahead, bytes. */
  memoryLimit: number;
  /** Disk tier of the block cache: where, and how many bytes at most. */
  cacheDir?: string;
  cacheSize: number;
  /**
   * Where files' POSIX metadata is kept across mounts, by object version (fs/kept-metadata.ts);
   * undefined when it is not kept (--no-keep-metadata).
   */
  metadataDir?: string;
  /** Let other users access the mount (needs user_allow_other for non-root). */
  allowOther: boolean;
  /** 'sync': close waits for the store; 'async': close waits for the local journal. */
  writeMode: 'sync' | 'async';
  /**
   * Where files being written are staged (and, in async mode, journaled), and multipart uploads
   * in progress are recorded.
   */
  stagingDir?: string;
  /**
   * The staging directory when --staging-dir is not given: kept per source and mountpoint, so
   * the next mount finds what a killed daemon left; removed at unmount when empty.
   */
  defaultStagingDir?: string;
  /** Serve Prometheus metrics on 127.0.0.1 at this port. */
  metricsPort?: number;
  logLevel: 'debug' | 'info' | 'warn' | 'error';
  logFile?: string;
  debugFuse: boolean;
}

export const MiB = 1024 * 1024;

/**
 * The source that stands for the root view (every paired bucket under one mountpoint), for where
 * a source must be written: `objmount mount objmount DIR`, fstab's first field (as `tmpfs` for
 * tmpfs), a service's SOURCE. The mount table shows the root view under this name too.
 */
export const ROOT_VIEW_WORD = 'objmount';

export const DEFAULTS = {
  region: 'us-east-1',
  fileMode: 0o644,
  dirMode: 0o755,
  metadataTtlSeconds: 1,
  negativeTtlSeconds: 1,
  partSize: 8 * MiB,
  uploadConcurrency: 8,
  maxUploadParts: 10_000,
  maxConnections: 32,
  requestTimeoutSeconds: 30,
  minTransferRate: 256 * 1024,
  blockSize: 8 * MiB,
  readAhead: 64 * MiB,
  cacheSize: 4 * 1024 * MiB,
} as const;

/** The default memory budget: a 16th of RAM, at least 256 MiB and at most 2 GiB. */
export function defaultMemoryLimit(totalMemory: number): number {
  return Math.min(2048 * MiB, Math.max(256 * MiB, Math.floor(totalMemory / 16 / MiB) * MiB));
}

/** Checks the read-path sizes against each other; throws `OptionError` naming the flag to fix. */
export function checkReadOptions(options: Pick<MountOptions, 'blockSize' | 'readAhead' | 'memoryLimit' | 'cacheSize' | 'cacheDir'>): void {
  const show = (bytes: number) => `${bytes / MiB} MiB`;
  if (options.blockSize < 64 * 1024 || options.blockSize > 256 * MiB) {
    throw new OptionError(`--block-size ${show(options.blockSize)} is out of range: use 64K to 256M`);
  }
  if (options.memoryLimit < 4 * options.blockSize) {
    throw new OptionError(
      `--memory-limit ${show(options.memoryLimit)} is too small for ${show(options.blockSize)} blocks: give it at least 4 blocks`,
    );
  }
  if (options.readAhead > options.memoryLimit / 2) {
    throw new OptionError(`--read-ahead ${show(options.readAhead)} must be at most half of --memory-limit (${show(options.memoryLimit)})`);
  }
  if (options.cacheDir !== undefined && options.cacheSize < options.blockSize) {
    throw new OptionError(`--cache-size ${show(options.cacheSize)} holds no ${show(options.blockSize)} block: make it larger`);
  }
}

export class OptionError extends Error {
  override readonly name = 'OptionError';
}

/** Parses `s3://bucket[/prefix]`, `gs://bucket[/prefix]`, `az://account/container[/prefix]` and `swift://container[/prefix]`. */
export function parseSource(text: string): MountSource {
  const match = /^([a-z0-9]+):\/\/([^/]*)(?:\/(.*))?$/.exec(text);
  if (!match) {
    throw new OptionError(
      `'${text}' is not a source: write it as s3://bucket[/prefix], gs://bucket[/prefix], az://account/container[/prefix] or swift://container[/prefix] (or ${ROOT_VIEW_WORD} for every paired bucket)`,
    );
  }
  const [, scheme, first = '', rest = ''] = match;
  if (scheme === 'az') return parseAzureSource(text, first, rest);
  if (scheme === 'swift') {
    // Swift's own limit: a container name is up to 256 bytes, anything but '/'.
    if (first === '' || Buffer.byteLength(first) > 256)
      throw new OptionError(
        `'${text}': '${first}' is not a Swift container name (1 to 256 bytes, no '/'); write swift://container[/prefix]`,
      );
    return { provider: 'swift', bucket: first, prefix: parsePrefix(text, rest) };
  }
  if (scheme !== 's3' && scheme !== 'gs') {
    throw new OptionError(
      `'${text}': the ${scheme}:// scheme is not supported; use s3://bucket[/prefix], gs://bucket[/prefix], az://account/container[/prefix] or swift://container[/prefix]`,
    );
  }
  if (scheme === 'gs' && !isGcsBucketName(first)) {
    throw new OptionError(
      `'${text}': '${first}' is not a valid GCS bucket name (3 to 63 lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`,
    );
  }
  if (!/^[a-zA-Z0-9._-]{1,255}$/.test(first)) {
    throw new OptionError(`'${text}': '${first}' is not a valid bucket name`);
  }
  return { provider: scheme, bucket: first, prefix: parsePrefix(text, rest) };
}

/** Azure's naming rules, checked here so a typo fails before any request. */
function parseAzureSource(text: string, account: string, rest: string): MountSource {
  if (!/^[a-z0-9]{3,24}$/.test(account)) {
    throw new OptionError(
      `'${text}': '${account}' is not a storage account name (3 to 24 lower-case letters and digits); write az://account/container`,
    );
  }
  const cut = rest.indexOf('/');
  const container = cut < 0 ? rest : rest.slice(0, cut);
  if (container === '') throw new OptionError(`'${text}': no container: write az://account/container[/prefix]`);
  if (!/^[a-z0-9](?:[a-z0-9]|-(?!-)){1,61}[a-z0-9]$/.test(container)) {
    throw new OptionError(
      `'${text}': '${container}' is not a container name (3 to 63 lower-case letters, digits and single hyphens, starting and ending with a letter or digit)`,
    );
  }
  return { provider: 'az', account, bucket: container, prefix: parsePrefix(text, cut < 0 ? '' : rest.slice(cut + 1)) };
}

function parsePrefix(text: string, rawPrefix: string): string {
  const trimmed = rawPrefix.replace(/^\/+|\/+$/g, '');
  if (trimmed.split('/').some((part) => part === '' && trimmed !== '')) {
    throw new OptionError(`'${text}': the prefix must not contain empty path components ('//')`);
  }
  return trimmed ? `${trimmed}/` : '';
}

/** GCS's naming rules: names with dots may be up to 222 characters, each dot-separated part up to 63. */
function isGcsBucketName(name: string): boolean {
  if (!/^[a-z0-9][a-z0-9._-]*[a-z0-9]$/.test(name) || name.length < 3) return false;
  return name.includes('.')
    ? name.length <= 222 && name.split('.').every((part) => part.length > 0 && part.length <= 63)
    : name.length <= 63;
}

export function formatSource(source: MountSource): string {
  const container = source.account ? `${source.account}/${source.bucket}` : source.bucket;
  return `${source.provider}://${container}${source.prefix ? `/${source.prefix.slice(0, -1)}` : ''}`;
}

/** Parses a size such as 8M, 16MiB, 1048576 into bytes. */
export function parseSize(text: string): number {
  const match = /^(\d+)\s*([kmgt]?)(i?b)?$/i.exec(text.trim());
  if (!match) throw new OptionError(`'${text}' is not a size: write it like 8M or 16MiB`);
  const power = ' kmgt'.indexOf((match[2] || ' ').toLowerCase());
  return Number(match[1]) * 1024 ** power;
}
