/**
 * The `objmount` command line: parse, call the daemon layer, print, exit. Errors meant for people
 * are printed as one line, without a stack trace, with a non-zero exit code.
 */

import { fork } from 'node:child_process';
import { mkdirSync, openSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createHash } from 'node:crypto';
import { homedir, totalmem } from 'node:os';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

import yargs, { type Argv } from 'yargs';
import { hideBin } from 'yargs/helpers';

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
import { MountRegistry } from '../daemon/registry.js';
import { unmount } from '../daemon/unmount.js';
import { UserError } from '../errors/user-error.js';
import { type LogLevel, type Logger, createJsonLogger, createLogger } from '../log/logger.js';
import { runForeground } from '../daemon/serve.js';
import { DAEMON_MALLOC_ENV } from '../daemon/malloc-env.js';

const DAEMON_CHILD = 'OBJMOUNT_DAEMON_CHILD';

function mountFlags(y: Argv) {
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
    .option('cache-dir', { type: 'string', describe: 'also cache blocks on disk here; they survive a remount' })
    .option('cache-size', { type: 'string', default: '4G', describe: 'most bytes the disk cache holds (with --cache-dir)' })
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
        'where files being written are staged and journaled (default: one directory per source and mountpoint under /var/lib/objmount/staging, or ~/.local/state/objmount/staging)',
    })
    .option('metrics-port', { type: 'number', describe: 'serve Prometheus metrics at http://127.0.0.1:PORT/metrics' })
    .option('log-level', { choices: ['debug', 'info', 'warn', 'error'] as const, default: 'info' as const })
    .option('log-file', { type: 'string', describe: 'daemon log (default: ~/.local/state/objmount/<mountpoint>.log)' })
    .option('debug-fuse', { type: 'boolean', default: false, describe: 'print every FUSE request (very verbose)' });
}

type MountArgs = Awaited<ReturnType<typeof mountFlags>['argv']>;

/** Options not given on the command line come from the configuration file, if it sets them. */
function withConfigFile<T>(y: Argv<T>, env: NodeJS.ProcessEnv): Argv<T> {
  // yargs' getOptions() (untyped in @types/yargs) lists the flags mountFlags declared.
  const declared = (y as unknown as { getOptions(): { key: Record<string, unknown> } }).getOptions().key;
  const known = new Set(Object.keys(declared).filter((key) => !['help', 'version', 'source', 'mountpoint'].includes(key)));
  const settings = readConfigFile(configFilePath(env, process.getuid?.() ?? 0), known);
  return y.config(settings);
}

function toMountOptions(args: MountArgs, env: NodeJS.ProcessEnv): MountOptions {
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

/** A container SAS's query string (`?sv=…&sig=…`), or a SAS URL. */
function looksLikeSas(text: string): boolean {
  return text.startsWith('?') || /(^|[?&])sig=/.test(text);
}

/** A secret from a file, or from standard input with '-': its first line, trimmed. Never echoed. */
async function readSecret(from: string, what: string): Promise<string> {
  let text: string;
  try {
    if (from === '-') {
      const chunks: Buffer[] = [];
      for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
      text = Buffer.concat(chunks).toString('utf8');
    } else {
      text = await readFile(from, 'utf8');
    }
  } catch (error) {
    throw new UserError(
      `cannot read ${what} from ${from === '-' ? 'standard input' : from}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`,
    );
  }
  const secret = text
    .split('\n')
    .map((line) => line.trim())
    .find((line) => line !== '');
  if (!secret) throw new UserError(`no ${what} in ${from === '-' ? 'standard input' : from}`);
  return secret;
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

function defaultLogFile(mountpoint: string, env: NodeJS.ProcessEnv): string {
  const base = process.getuid?.() === 0 ? '/var/log/objmount' : join(env.XDG_STATE_HOME ?? join(homedir(), '.local', 'state'), 'objmount');
  const name = resolve(mountpoint).replace(/^\/+/, '').replace(/\//g, '-') || 'root';
  return join(base, `${name}.log`);
}

async function mountCommand(args: MountArgs, env: NodeJS.ProcessEnv): Promise<void> {
  const options = toMountOptions(args, env);
  const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
  await registry.checkPrivate(); // before anything is mounted: a mount it could not record could not be unmounted
  const child = env[DAEMON_CHILD] === '1';
  if (options.foreground || child) {
    // The daemon child's stdout and stderr are its log file.
    const level = options.logLevel as LogLevel;
    // Lines for a person at a terminal; JSON lines for the log file or the journal.
    const logger: Logger = process.stderr.isTTY ? createLogger((line) => process.stderr.write(line), level) : createJsonLogger(2, level);
    // The SDK and the FUSE binding load only for commands that mount.
    const [
      { startMount },
      { DefaultChainResolver, StoreResolver },
      { CredentialStore, LoadedCredentialStore },
      { AzureEnvironmentResolver, StoredAzureResolver },
      { StoredGcsResolver },
      { StoredSwiftResolver },
    ] = await Promise.all([
      import('../daemon/mount.js'),
      import('../creds/resolver.js'),
      import('../creds/store.js'),
      import('../creds/azure-credentials.js'),
      import('../creds/gcs-credentials.js'),
      import('../creds/swift-credentials.js'),
    ]);
    // One read of credentials.json serves every resolver (and the root view's list of buckets).
    const credentials = new LoadedCredentialStore(new CredentialStore(CredentialStore.defaultDirectory(env, process.getuid?.() ?? 0)));
    try {
      await runForeground({
        start: () =>
          startMount(options, {
            resolver: new StoreResolver(credentials, new DefaultChainResolver(env), args.creds),
            azureResolver: new StoredAzureResolver(credentials, new AzureEnvironmentResolver(env), args.creds),
            gcsResolver: new StoredGcsResolver(credentials, args.creds),
            swiftResolver: new StoredSwiftResolver(credentials, env, args.creds),
            pairings: async () => (await credentials.read()).pairings,
            reloadCredentials: () => credentials.forget(),
            logger,
            // A daemon's log is a file: its parent says these on the terminal (in the foreground
            // the log is the terminal already).
            warnUser: child ? (message) => process.send?.({ type: 'warning', message }) : undefined,
          }),
        logger,
        registry,
        logFile: options.logFile,
        onReady: child ? () => process.send?.({ type: 'ready' }) : undefined,
      });
    } catch (error) {
      if (child)
        process.send?.({
          type: 'error',
          message: error instanceof Error ? error.message : String(error),
          user: error instanceof UserError,
        });
      throw error;
    }
    return;
  }
  await daemonize(options, env);
}

/**
 * Starts this same command as a detached child in the foreground mode, its output going to the
 * log file, and returns once the child reports the mount live (or exits with the reason).
 */
async function daemonize(options: MountOptions, env: NodeJS.ProcessEnv): Promise<void> {
  const logFile = options.logFile ?? defaultLogFile(options.mountpoint, env);
  mkdirSync(resolve(logFile, '..'), { recursive: true, mode: 0o700 });
  const log = openSync(logFile, 'a', 0o600);
  const script = fileURLToPath(new URL('./main.js', import.meta.url));
  const args = hideBin(process.argv);
  if (!options.logFile) args.push('--log-file', logFile);
  const child = fork(script, args, {
    detached: true,
    stdio: ['ignore', log, log, 'ipc'],
    // Malloc settings that only take effect at process start (daemon/malloc-env.ts).
    env: { ...DAEMON_MALLOC_ENV, ...env, [DAEMON_CHILD]: '1' },
  });
  const outcome = await new Promise<{ ready: boolean; message?: string }>((resolveOutcome) => {
    child.on('message', (message: { type?: string; message?: string }) => {
      if (message?.type === 'warning') process.stderr.write(`objmount: warning: ${message.message}\n`);
      if (message?.type === 'ready') resolveOutcome({ ready: true });
      if (message?.type === 'error') resolveOutcome({ ready: false, message: message.message });
    });
    child.on('exit', (code) => resolveOutcome({ ready: false, message: `the daemon exited with code ${code}; see ${logFile}` }));
  });
  if (!outcome.ready) throw new UserError(outcome.message ?? `the daemon failed; see ${logFile}`);
  child.disconnect();
  child.unref();
  // A container name alone does not say which account: Azure sources are shown whole.
  const what = options.rootView ? 'the root view' : options.source.account ? formatSource(options.source) : options.source.bucket;
  process.stdout.write(`mounted ${what} on ${resolve(options.mountpoint)} (log: ${logFile})\n`);
}

/** `objmount creds …`; the commands load the SDK only when they run. */
function credsCommands(y: Argv, env: NodeJS.ProcessEnv): Argv {
  const context = async () => {
    const { CredentialStore } = await import('../creds/store.js');
    return {
      store: new CredentialStore(CredentialStore.defaultDirectory(env, process.getuid?.() ?? 0)),
      env,
      print: (line: string) => process.stdout.write(`${line}\n`),
      readStdin: async () => {
        const chunks: Buffer[] = [];
        for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
        return Buffer.concat(chunks).toString('utf8');
      },
    };
  };
  const commands = () => import('../creds/commands.js');
  return y
    .command(
      'import [file]',
      'read credentials from a file (- for standard input), verify them, detect and pair their buckets',
      (c) =>
        c
          .positional('file', {
            type: 'string',
            describe:
              'AWS credentials/config, .s3cfg, rclone.conf (s3, azureblob, google cloud storage, swift), mc config.json, ec2rc.sh, an OpenStack RC file (openrc.sh; a password it asks for comes from OS_PASSWORD or standard input), a key=value file, an Azure connection string, SAS URL or AZURE_STORAGE_* file, a Google service-account key, or -',
          })
          .option('from-env', {
            type: 'boolean',
            default: false,
            describe: 'import AWS_* (with AWS_ENDPOINT_URL[_S3], AWS_REGION), AZURE_STORAGE_* and GOOGLE_APPLICATION_CREDENTIALS',
          })
          .option('name', {
            type: 'string',
            describe: 'name to store it under (default: the profile, remote or alias, or the endpoint host)',
          })
          .option('format', {
            choices: ['keyvalue', 'aws', 's3cfg', 'rclone', 'mc', 'ec2rc', 'openstack-table', 'azure', 'gcs'] as const,
            describe: 'the file format (default: detected)',
          })
          .option('profile', { type: 'string', describe: 'import only this profile, rclone remote or mc alias' })
          .option('endpoint', { type: 'string', describe: 'endpoint URL, for files that do not name one' })
          .option('region', { type: 'string', describe: 'region, for files that do not name one' })
          .option('signature', {
            choices: ['v2', 'v4'] as const,
            describe: "request signing the store needs (default: the file's, e.g. s3cmd's signature_v2, else v4)",
          })
          .option('ca-bundle', {
            type: 'string',
            describe: "PEM file of CA certificates the store's endpoint needs (default: the file's, e.g. s3cmd's ca_certs_file)",
          })
          .option('insecure', { type: 'boolean', default: false, describe: "do not verify the store's TLS certificate" })
          .option('force', { type: 'boolean', default: false, describe: 'replace a credential of the same name' }),
      async (args) => {
        if (!args.file && !args['from-env']) throw new UserError('name a file to import (or - for standard input, or --from-env)');
        await (await commands()).importCredentials(await context(), {
          file: args.file,
          fromEnv: args['from-env'],
          name: args.name,
          format: args.format,
          profile: args.profile,
          endpoint: args.endpoint,
          region: args.region,
          signatureVersion: args.signature,
          caBundle: args['ca-bundle'],
          insecure: args.insecure,
          force: args.force,
        });
      },
    )
    .command(
      'list',
      'list credentials and pairings (secrets masked)',
      (c) => c.option('json', { type: 'boolean', default: false }),
      async (args) => (await commands()).listCredentials(await context(), args.json),
    )
    .command(
      'show <name>',
      'show one credential (secrets masked)',
      (c) => c.positional('name', { type: 'string', demandOption: true }).option('json', { type: 'boolean', default: false }),
      async (args) => (await commands()).showCredential(await context(), args.name, args.json),
    )
    .command(
      'verify [name]',
      'check that credentials authenticate and their paired buckets are reachable',
      (c) => c.positional('name', { type: 'string' }),
      async (args) => (await commands()).verifyCredentials(await context(), args.name),
    )
    .command(
      'detect [name]',
      'list the buckets a credential (or every one) can see, and pair those not paired yet',
      (c) => c.positional('name', { type: 'string' }),
      async (args) => (await commands()).detectAndPair(await context(), args.name),
    )
    .command(
      'pair <uri> [name]',
      'use credential NAME for bucket URI (s3://bucket, az://account/container, gs://bucket, swift://container), for keys that may not list buckets; NAME public: unsigned requests to a public s3:// bucket; an Azure container SAS: --sas FILE, or - (or NAME -) to read it from standard input',
      (c) =>
        c
          .positional('uri', { type: 'string', demandOption: true })
          .positional('name', { type: 'string', describe: 'a stored credential, public, or - (an Azure container SAS on standard input)' })
          .option('sas', {
            type: 'string',
            describe:
              'az:// only: read the container SAS (sv=…&sig=…) from this file, or from standard input with - (never give it on the command line)',
          })
          .option('endpoint', {
            type: 'string',
            describe:
              "with a SAS: the blob service URL (default: a stored credential's of the account, else Azure's); with public: the S3-compatible store where the bucket is checked (default AWS)",
          }),
      async (args) => {
        // yargs reads `--sas -` as an empty --sas (and a positional '-'), and a lone `-` NAME as ''.
        const stdin = (value: string | undefined) => value === '-' || value === '';
        const sasFrom = stdin(args.sas) ? '-' : (args.sas ?? (stdin(args.name) ? '-' : undefined));
        if (args.name !== undefined && !stdin(args.name) && looksLikeSas(args.name)) {
          // Said without repeating it: the token is already in the shell history and /proc.
          throw new UserError(
            'a SAS on the command line stays in your shell history and in /proc: give it with --sas FILE, or with --sas - on standard input (and think of it as exposed)',
          );
        }
        if (sasFrom === undefined && args.name === undefined)
          throw new UserError('name the credential to pair with, public, or give an Azure SAS with --sas FILE (- for standard input)');
        const sas = sasFrom === undefined ? undefined : await readSecret(sasFrom, 'the SAS');
        return (await commands()).pairBucket(await context(), args.uri, sas === undefined ? args.name! : undefined, args.endpoint, sas);
      },
    )
    .command(
      'unpair <uri>',
      'forget the pairing of bucket URI',
      (c) => c.positional('uri', { type: 'string', demandOption: true }),
      async (args) => (await commands()).unpairBucket(await context(), args.uri),
    )
    .command(
      'remove <name>',
      'remove a credential and its pairings',
      (c) => c.positional('name', { type: 'string', demandOption: true }),
      async (args) => {
        const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
        const mounted = (await registry.all()).map((record) => record.source);
        await (await commands()).removeCredential(await context(), args.name, mounted);
      },
    )
    .demandCommand(1, 'name a creds command: import, list, show, verify, detect, pair, unpair or remove');
}

export async function main(argv: string[], env: NodeJS.ProcessEnv): Promise<void> {
  await yargs(argv)
    .scriptName('objmount')
    .usage('$0 <command> [options]\n\nMount S3 buckets (and S3-compatible stores) as directories.')
    .command(
      'mount <source> [mountpoint]',
      `mount s3://bucket[/prefix], gs://bucket[/prefix], az://account/container[/prefix] or swift://container[/prefix] on an empty directory; with the directory alone (or the source ${ROOT_VIEW_WORD}, as in fstab), the root view: every paired bucket as s3/<bucket>, az/<account>/<container>, gs/<bucket>, swift/<container>`,
      (y) => withConfigFile(mountFlags(y), env),
      (args) => mountCommand(args as MountArgs, env),
    )
    .command(
      'unmount <mountpoint>',
      'upload what is pending and unmount',
      (y) =>
        y.positional('mountpoint', { type: 'string', demandOption: true }).option('force', {
          type: 'boolean',
          default: false,
          describe: 'detach at once, even while files are open, without waiting for uploads (async closes stay in the journal)',
        }),
      async (args) => {
        const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
        await unmount(args.mountpoint, { force: args.force, registry });
      },
    )
    .command(
      'install-service <name> <source> <mountpoint> [options..]',
      'configure a systemd service (objmount@NAME) that mounts SOURCE on MOUNTPOINT at boot',
      (y) =>
        y
          .positional('name', { type: 'string', demandOption: true })
          .positional('source', { type: 'string', demandOption: true })
          .positional('mountpoint', { type: 'string', demandOption: true })
          .positional('options', { type: 'string', array: true, describe: "further 'objmount mount' options (after --)" })
          .option('unit-dir', { type: 'string', default: '/etc/systemd/system', describe: 'where the unit template goes' }),
      async (args) => {
        const { installService } = await import('../daemon/install-service.js');
        const configDir = env.OBJMOUNT_CONFIG_DIR ? join(env.OBJMOUNT_CONFIG_DIR, 'mounts') : '/etc/objmount/mounts';
        await installService({
          name: args.name,
          source: args.source,
          mountpoint: args.mountpoint,
          // Options after `--` land in args._ (after the command's own name).
          options: [...(args.options ?? []), ...args._.slice(1)].map(String),
          configDir,
          unitDir: args['unit-dir'],
          print: (line) => process.stdout.write(`${line}\n`),
        });
      },
    )
    .command(
      'status [mountpoint]',
      'what each mount (or one) has done: traffic, requests, cache, pending uploads, errors',
      (y) => y.positional('mountpoint', { type: 'string' }).option('json', { type: 'boolean', default: false }),
      async (args) => {
        const registry = new MountRegistry(MountRegistry.defaultDirectory(env, process.getuid?.() ?? 0));
        const { showStatus } = await import('../daemon/status-command.js');
        await showStatus(registry, args.mountpoint === undefined ? undefined : resolve(args.mountpoint), args.json, (line) =>
          process.stdout.write(`${line}\n`),
        );
      },
    )
    .command('creds', 'import credentials and pair buckets with them (see objmount creds --help)', (y) => credsCommands(y, env))
    .command(
      'demo',
      'mount a sample bucket from an embedded local S3 server at ./objmount-demo',
      (y) => y.option('dir', { type: 'string', default: './objmount-demo', describe: 'where to mount the demo bucket' }),
      async (args) => {
        // Loaded on demand: the embedded server is only needed by the demo.
        const { runDemo } = await import('../daemon/demo.js');
        await runDemo({ mountpoint: args.dir });
      },
    )
    .demandCommand(1, 'name a command: mount, unmount, status, creds, install-service or demo')
    .strict()
    .showHelpOnFail(false)
    .fail((message, error) => {
      throw error ?? new UserError(`${message} (see 'objmount --help')`, 2);
    })
    .help()
    .alias('help', 'h')
    .version()
    .parseAsync();
}

function report(error: unknown): number {
  if (error instanceof UserError) {
    process.stderr.write(`objmount: ${error.message}\n`);
    return error.exitCode;
  }
  if (error instanceof OptionError) {
    process.stderr.write(`objmount: ${error.message}\n`);
    return 2;
  }
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`objmount: unexpected error: ${message.split('\n')[0]}\n`);
  return 1;
}

// objmount supports Node 20; the SDK's notice about its own future Node support is not for our users.
process.env.AWS_SDK_JS_NODE_VERSION_SUPPORT_WARNING_DISABLED ??= 'true';

main(hideBin(process.argv), process.env).catch((error: unknown) => {
  process.exitCode = report(error);
});
