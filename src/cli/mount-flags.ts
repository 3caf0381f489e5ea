/**
 * The `objmount mount` options: their yargs definitions (with the configuration file's settings as
 * defaults), and their check and conversion into MountOptions. A bad value is one OptionError line,
 * thrown before anything is mounted.
 */

import { createHash } from 'node:crypto';
import { homedir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';

import type { Argv } from 'yargs';

import { configFilePath, readConfigFile } from '../config/config-file.js';
import {
  DEFAULTS,
  MiB,
  type MountOptions,
  type MountSource,
  OptionError,
  ROOT_VIEW_WORD,
  checkReadOptions,
  defaultMemoryLimit,
  formatSource,
  parseSize,
  parseSource,
} from '../config/mount-options.js';

export function mountFlags(y: Argv) {
  return y
    .positional('source', {
      type: 'string',
      demandOption: true,
      describe: `s3://bucket[/prefix], gs://bucket[/prefix], az://account/container[/prefix] or swift://container[/prefix]; ${ROOT_VIEW_WORD}: the root view, every paired bucket (or, alone, the mountpoint of the root view)`,
    })
    .positional('mountpoint', { type: 'string', describe: 'an empty directory' })
    .option('endpoint', {
      type: 'string',
      describe:
        "endpoint URL of an S3-compatible store (default: the bucket's stored credential's, else AWS), or an Azure blob service URL (default https://ACCOUNT.blob.core.windows.net; Azure credentials come from AZURE_STORAGE_KEY, AZURE_STORAGE_SAS_TOKEN or AZURE_STORAGE_CONNECTION_STRING), or a Swift storage URL (the account's, instead of the service catalog's)",
    })
    .option('region', { type: 'string', describe: `region (default: the stored credential's, else $AWS_REGION, else ${DEFAULTS.region})` })
    .option('path-style', {
      type: 'boolean',
      describe:
        "path-style addressing (endpoint/bucket/key); default: the stored credential's, else on with a custom endpoint, off for AWS",
    })
    .option('signature', {
      choices: ['v2', 'v4'] as const,
      describe: "request signing: v2 for old stores that need it (default: the stored credential's, else v4)",
    })
    .option('ca-bundle', {
      type: 'string',
      describe: "PEM file of CA certificates to trust besides the system's (default: the stored credential's, else $AWS_CA_BUNDLE)",
    })
    .option('insecure', {
      type: 'boolean',
      default: false,
      describe: "do not verify the store's TLS certificate (a self-signed test gateway)",
    })
    .option('key-file', {
      type: 'string',
      describe:
        'gs:// only: a service-account JSON key (default: $GOOGLE_APPLICATION_CREDENTIALS, else none with --endpoint, else the Application Default Credentials)',
    })
    .option('creds', { type: 'string', describe: "use this stored credential (see 'objmount creds list') instead of the bucket's pairing" })
    .option('foreground', { alias: 'f', type: 'boolean', default: false, describe: 'stay in the foreground, log to stderr' })
    .option('uid', { type: 'number', describe: 'owner of objects without POSIX metadata (default: yours)' })
    .option('gid', { type: 'number', describe: 'group of objects without POSIX metadata (default: yours)' })
    .option('file-mode', { type: 'string', default: '644', describe: 'permissions (octal) of files without metadata' })
    .option('dir-mode', { type: 'string', default: '755', describe: 'permissions (octal) of directories without metadata' })
    .option('metadata-ttl', {
      type: 'number',
      default: DEFAULTS.metadataTtlSeconds,
      describe: 'seconds attributes are cached; changes by other clients show up after this',
    })
    .option('negative-ttl', { type: 'number', default: DEFAULTS.negativeTtlSeconds, describe: 'seconds a missing path is cached' })
    .option('part-size', { type: 'string', default: '8M', describe: 'multipart upload part size (grows for huge files)' })
    .option('max-upload-parts', {
      type: 'number',
      default: DEFAULTS.maxUploadParts,
      describe:
        "most parts in one multipart upload (10,000 on S3; set it for stores that allow fewer, e.g. TrueNAS's 'Maximum Upload Parts')",
    })
    .option('upload-concurrency', { type: 'number', default: DEFAULTS.uploadConcurrency, describe: 'parts uploaded at once per file' })
    .option('max-connections', {
      type: 'number',
      default: DEFAULTS.maxConnections,
      describe: 'connections to the store (also: GETs in flight)',
    })
    .option('request-timeout', {
      type: 'number',
      default: DEFAULTS.requestTimeoutSeconds,
      describe:
        'seconds a store request that moves no data (stat, list, delete) may take, retries included, before it fails with ETIMEDOUT',
    })
    .option('min-transfer-rate', {
      type: 'string',
      default: '256K',
      describe:
        'slowest rate (per second) a read or upload request may move its bytes: its deadline is --request-timeout plus its size at this rate',
    })
    .option('block-size', { type: 'string', default: '8M', describe: 'objects are read and cached in blocks of this size' })
    .option('read-ahead', { type: 'string', default: '64M', describe: 'largest read-ahead window of a file read sequentially' })
    .option('memory-limit', {
      type: 'string',
      describe: 'one budget for cached blocks, read-ahead and upload buffers (default: 1/16 of RAM, 256M to 2G)',
    })
    .option('cache-dir', {
      type: 'string',
      describe: 'also cache blocks on disk here; they survive a remount (yours alone: others may not write in it; made 0700 if missing)',
    })
    .option('cache-size', { type: 'string', default: '4G', describe: 'most bytes the disk cache holds (with --cache-dir)' })
    .option('keep-metadata', {
      type: 'boolean',
      default: true,
      describe:
        "keep files' POSIX metadata (mode, owner, times) on local disk across mounts, by object version: a listing that shows an object unchanged since then needs no request for it (--no-keep-metadata: keep nothing)",
    })
    .option('metadata-dir', {
      type: 'string',
      describe:
        'where the metadata is kept, yours alone (default: /var/cache/objmount/metadata for root, else ~/.cache/objmount/metadata; made 0700 if missing)',
    })
    .option('allow-other', { type: 'boolean', default: false, describe: 'let other users access the mount' })
    .option('write-mode', {
      choices: ['sync', 'async'] as const,
      default: 'sync' as const,
      describe:
        'sync: close returns once the file is in the store; async: once it is journaled on local disk (uploads follow, and finish after a crash at the next mount)',
    })
    .option('staging-dir', {
      type: 'string',
      describe:
        'where files being written are staged and journaled, yours alone: others may not write in it (default: one directory per source and mountpoint under /var/lib/objmount/staging, or ~/.local/state/objmount/staging)',
    })
    .option('metrics-port', { type: 'number', describe: 'serve Prometheus metrics at http://127.0.0.1:PORT/metrics' })
    .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const })
    .option('log-file', { type: 'string', describe: 'daemon log (default: ~/.local/state/objmount/<mountpoint>.log)' })
    .option('debug-fuse', { type: 'boolean', default: false, describe: 'print every FUSE request (very verbose)' });
}

export type MountArgs = Awaited<ReturnType<typeof mountFlags>['argv']>;

/** Options not given on the command line come from the configuration file, if it sets them. */
export function withConfigFile<T>(y: Argv<T>, env: NodeJS.ProcessEnv): Argv<T> {
  // yargs' getOptions() (untyped in @types/yargs) lists the flags mountFlags declared.
  const declared = (y as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key;
  const known = new Set(Object.keys(declared).filter((key) => !['help', 'version', 'source', 'mountpoint'].includes(key)));
  const settings = readConfigFile(configFilePath(env, process.getuid?.() ?? 0), known);
  return y.config(settings);
}

export function toMountOptions(args: MountArgs, env: NodeJS.ProcessEnv): MountOptions {
  const octal = (name: string, text: string) => {
    if (!/^[0-7]{1,4}$/.test(text)) throw new OptionError(`--${name} '${text}' is not an octal mode such as 644`);
    return parseInt(text, 8);
  };
  // yargs turns `--uid abc` into NaN: every number is checked here, and a bad one is named in
  // one line, before anything is mounted.
  const wholeNumber = (name: string, value: number, min: number, max: number) => {
    if (!Number.isInteger(value) || value < min || value > max)
      throw new OptionError(`--${name} must be a whole number from ${min} to ${max}${shown(value)}`);
    return value;
  };
  const size = (name: string, text: string, min: number, max: number) => {
    let bytes: number;
    try {
      bytes = parseSize(String(text));
    } catch (error) {
      throw new OptionError(`--${name}: ${(error as Error).message}`);
    }
    if (bytes < min || bytes > max)
      throw new OptionError(`--${name} ${text} is out of range: use ${formatBytes(min)} to ${formatBytes(max)}`);
    return bytes;
  };
  const between = (name: string, value: number, min: number, max: number) => {
    if (!Number.isFinite(value) || value < min || value > max)
      throw new OptionError(`--${name} must be a number from ${min} to ${max}${shown(value)}`);
    return value;
  };
  const id = (name: 'uid' | 'gid', value: number | undefined, fallback: number) => {
    return value === undefined ? fallback : wholeNumber(name, value, 0, 4_294_967_294);
  };
  // `mount DIR` alone, or `mount objmount DIR` (as fstab must write it), is the root view: the
  // buckets of the stored credentials, all under DIR.
  const rootView = args.mountpoint === undefined ? !args.source.includes('://') : args.source === ROOT_VIEW_WORD;
  if (args.mountpoint === undefined && !rootView) throw new OptionError(`name the mountpoint: objmount mount ${args.source} DIRECTORY`);
  const options: MountOptions = {
    source: rootView ? ROOT_VIEW_SOURCE : parseSource(args.source),
    rootView,
    mountpoint: args.mountpoint ?? args.source,
    endpoint: args.endpoint,
    keyFile: gcsKeyFile(args['key-file'], env),
    region: args.region,
    defaultRegion: env.AWS_REGION ?? env.AWS_DEFAULT_REGION ?? DEFAULTS.region,
    pathStyle: args['path-style'],
    signatureVersion: args.signature,
    caBundle: args['ca-bundle'],
    environmentCaBundle: env.AWS_CA_BUNDLE || undefined,
    insecure: args.insecure,
    foreground: args.foreground,
    uid: id('uid', args.uid, process.getuid?.() ?? 0),
    gid: id('gid', args.gid, process.getgid?.() ?? 0),
    fileMode: octal('file-mode', args['file-mode']),
    dirMode: octal('dir-mode', args['dir-mode']),
    metadataTtlSeconds: between('metadata-ttl', args['metadata-ttl'], 0, 86_400 * 365),
    negativeTtlSeconds: between('negative-ttl', args['negative-ttl'], 0, 86_400 * 365),
    // 1 MiB: Azure's and GCS's smallest; S3's 5 MiB is enforced by the uploader's growth rule.
    partSize: size('part-size', args['part-size'], MiB, 5 * 1024 * MiB),
    uploadConcurrency: wholeNumber('upload-concurrency', args['upload-concurrency'], 1, 256),
    maxUploadParts: wholeNumber('max-upload-parts', args['max-upload-parts'], 1, 10_000),
    maxConnections: wholeNumber('max-connections', args['max-connections'], 1, 4096),
    requestTimeoutSeconds: between('request-timeout', args['request-timeout'], 0.1, 86_400),
    minTransferRate: size('min-transfer-rate', args['min-transfer-rate'], 1024, 1024 * 1024 * MiB),
    blockSize: size('block-size', args['block-size'], 0, Number.MAX_SAFE_INTEGER),
    readAhead: size('read-ahead', args['read-ahead'], 0, Number.MAX_SAFE_INTEGER),
    memoryLimit:
      args['memory-limit'] === undefined
        ? defaultMemoryLimit(totalmem())
        : size('memory-limit', args['memory-limit'], 0, Number.MAX_SAFE_INTEGER),
    cacheDir: args['cache-dir'] === undefined ? undefined : resolve(args['cache-dir']),
    cacheSize: size('cache-size', args['cache-size'], 0, Number.MAX_SAFE_INTEGER),
    metadataDir: !args['keep-metadata'] ? undefined : resolve(args['metadata-dir'] ?? defaultMetadataDir(env)),
    allowOther: args['allow-other'],
    writeMode: args['write-mode'],
    stagingDir: args['staging-dir'] === undefined ? undefined : resolve(args['staging-dir']),
    metricsPort: args['metrics-port'],
    logLevel: args['log-level'],
    logFile: args['log-file'],
    debugFuse: args['debug-fuse'],
  };
  checkReadOptions(options);
  if (args['key-file'] !== undefined && options.source.provider !== 'gs') throw new OptionError('--key-file is for gs:// sources only');
  // The Azure and GCS backends use the system's certificates, always verified: said, not ignored.
  if (!rootView && options.source.provider !== 's3') {
    const flag = args.insecure ? '--insecure' : args['ca-bundle'] !== undefined ? '--ca-bundle' : undefined;
    if (flag)
      throw new OptionError(
        `${flag} is for s3:// sources: the ${options.source.provider}:// backend always verifies TLS with the system's certificates`,
      );
  }
  if (
    options.metricsPort !== undefined &&
    !(Number.isInteger(options.metricsPort) && options.metricsPort > 0 && options.metricsPort < 65536)
  ) {
    throw new OptionError(`--metrics-port ${options.metricsPort} is not a TCP port (1 to 65535)`);
  }
  if (!options.stagingDir) options.defaultStagingDir = defaultStagingDir(options, env);
  return options;
}

/** What was given, for a message about a bad number (yargs made NaN of what was not one). */
function shown(value: number): string {
  return Number.isNaN(value) ? ' (not a number was given)' : ` (not ${value})`;
}

function formatBytes(bytes: number): string {
  const units = ['', 'K', 'M', 'G', 'T'];
  let unit = 0;
  while (bytes >= 1024 && bytes % 1024 === 0 && unit < units.length - 1) {
    bytes /= 1024;
    unit += 1;
  }
  return `${bytes}${units[unit]}`;
}

/** The service-account key of a gs:// mount: --key-file, else $GOOGLE_APPLICATION_CREDENTIALS. */
function gcsKeyFile(flag: string | undefined, env: NodeJS.ProcessEnv): MountOptions['keyFile'] {
  if (flag !== undefined) return { path: resolve(flag), from: '--key-file' };
  const fromEnv = env.GOOGLE_APPLICATION_CREDENTIALS;
  return fromEnv ? { path: resolve(fromEnv), from: 'GOOGLE_APPLICATION_CREDENTIALS' } : undefined;
}

/** The root view mounts no one source; this stands in where a source names the mount (staging, logs). */
const ROOT_VIEW_SOURCE: MountSource = { provider: 's3', bucket: 'root-view', prefix: '' };

/** Where files' metadata is kept across mounts when --metadata-dir is not given (a cache: losing it costs requests only). */
function defaultMetadataDir(env: NodeJS.ProcessEnv): string {
  if (process.getuid?.() === 0) return '/var/cache/objmount/metadata';
  return join(env.XDG_CACHE_HOME ?? join(homedir(), '.cache'), 'objmount', 'metadata');
}

/**
 * The staging directory when --staging-dir is not given: one per source, endpoint and mountpoint,
 * so the next mount of the same thing finds what a killed daemon left (async mode's journal,
 * multipart uploads to abort) and two live mounts never share one.
 */
function defaultStagingDir(options: MountOptions, env: NodeJS.ProcessEnv): string {
  const base = process.getuid?.() === 0 ? '/var/lib/objmount' : join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'objmount');
  const source = formatSource(options.source);
  const where = `${source}\0${options.endpoint ?? ''}\0${resolve(options.mountpoint)}`;
  const id = createHash('sha256').update(where).digest('hex').slice(0, 12);
  return join(base, 'staging', `${options.source.bucket}-${id}`);
}
