/**
 * Composition root of one mount: checks the mountpoint, resolves credentials, checks the bucket,
 * builds the store, the file system and the FUSE session, and tears them down in order.
 * Every failure before the mount is live leaves nothing behind and becomes a `UserError`.
 */

import { createHash } from 'node:crypto';
import { mkdir, mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MiB, type MountOptions, formatSource, parseSource } from '../config/mount-options.js';
import type { AzureCredentialResolver } from '../creds/azure-credentials.js';
import type { GcsCredentialResolver } from '../creds/gcs-credentials.js';
import type { SwiftCredentialResolver } from '../creds/swift-credentials.js';
import type { CredentialResolver } from '../creds/resolver.js';
import { UserError } from '../errors/user-error.js';
import { FileSystem } from '../fs/file-system.js';
import { KeptMetadata } from '../fs/kept-metadata.js';
import { MemoryBudget } from '../fs/memory-budget.js';
import { type MountedFileSystem, RootView, type Space } from '../fs/root-view.js';
import { BlockCache } from '../fs/read/block-cache.js';
import { DiskCache } from '../fs/read/disk-cache.js';
import { FileUploader } from '../fs/write/file-uploader.js';
import { PartBuffers } from '../fs/write/part-buffers.js';
import { UploadTracker } from '../fs/write/journal.js';
import { recover, removeUnjournaled } from '../fs/write/recovery.js';
import { FuseSession, canonical, dropFromPageCache, largeBuffer, sha256OffThread } from '../fuse/binding.js';
import { createOperations } from '../fuse/operations.js';
import type { Logger } from '../log/logger.js';
import { type ObjectStore, isStoreError } from '../storage/object-store.js';
import type { StoreDeadlines } from '../storage/deadline.js';
import { type BuiltStore, type StoreSpec, createStore } from '../storage/store-factory.js';
import { detach, findMount, prepareMountpoint, setKernelReadAhead } from './mountpoint.js';
import { checkPrivateDirectory } from './private-directory.js';
import { type MountStatus, serveMetrics } from './status.js';
import { storeSpecOf } from './store-spec.js';

export interface RunningMount {
  readonly mountpoint: string;
  readonly source: string;
  /** Resolves when the mount goes away without `stop` (unmounted from outside). */
  readonly gone: Promise<void>;
  /** Uploads what is pending, detaches the mount and releases everything. Idempotent. */
  stop(): Promise<void>;
  /** Whether `stop` has begun (asked for, or because the mount went away from outside). */
  readonly stopping: boolean;
  /** What the mount has done so far. */
  status(): MountStatus;
  /** Where async closes are journaled (async write mode), for the message of a forced stop. */
  readonly journal?: string;
}

export interface MountDependencies {
  resolver: CredentialResolver;
  /** Where az:// sources get their credential (stored credentials, then the environment). */
  azureResolver?: AzureCredentialResolver;
  /** The stored service-account key of a gs:// bucket, if any (`objmount creds`). */
  gcsResolver?: GcsCredentialResolver;
  /** Where swift:// sources get their credential (stored credentials, then OS_* of the environment). */
  swiftResolver?: SwiftCredentialResolver;
  /** The stored pairings (`s3://b`, `az://a/c`, `gs://b` → credential name or 'public'), for the root view. */
  pairings?: () => Promise<Record<string, string>>;
  /**
   * The resolvers and `pairings` share one read of the credential store; this drops it, so the
   * next of them reads the store again. The root view calls it before it looks for new pairings
   * and after a bucket failed to open.
   */
  reloadCredentials?: () => void;
  logger: Logger;
  /**
   * Warnings the person who ran `mount` must see on their terminal, not only in the daemon's log
   * (TLS not verified, credentials over plain http); also logged. Default: the log only.
   */
  warnUser?: (message: string) => void;
}

/** Most files whose metadata is kept across mounts, per bucket: about 200 bytes each on disk, 400 in memory. */
const KEPT_RECORDS = 100_000;

/** One bucket's stack under the FUSE session: its store, caches and file system. */
interface BucketStack {
  source: string;
  fs: FileSystem;
  store: BuiltStore;
  blockCache: BlockCache;
  disk?: DiskCache;
  stagingDir: string;
  credentialDescription: string;
  /** Releases what the stack holds (after its uploads are drained). */
  cleanUp(): Promise<void>;
}

/**
 * Opens `options.source`: its credential and store (probed), staging (recovered), caches, file
 * system. Its block cache and upload buffers live in `memoryBudget`, the mount's one budget.
 */
async function openBucket(options: MountOptions, deps: MountDependencies, memoryBudget: MemoryBudget): Promise<BucketStack> {
  const { logger } = deps;
  const source = formatSource(options.source);
  const { spec, credentialDescription, endpoint, location, probeHints, maxParts } = await storeSpecOf(options, {
    ...deps,
    warn: warnBoth(deps),
  });
  const store = await createStore(spec, {
    credentialDescription,
    purpose: 'mount',
    maxConnections: options.maxConnections,
    maxParts,
    logger,
    deadlines: storeDeadlines(options),
    payloadSha256: sha256OffThread,
  });
  const plain = plainHttpWarning(credentialsSentTo(spec), whatIsSent(spec, credentialDescription));
  if (plain) warnBoth(deps)(plain);
  const cleanups: Array<() => Promise<unknown> | unknown> = [() => store.destroy()];
  const cleanUp = async () => {
    for (const cleanup of cleanups.reverse())
      await Promise.resolve()
        .then(cleanup)
        .catch(() => undefined);
  };
  try {
    try {
      await store.probe(options.source.prefix);
    } catch (error) {
      if (isStoreError(error)) {
        const hint = probeHints?.[error.code];
        throw new UserError(
          `cannot mount ${source}: ${hint ? `${error.message}: ${hint}` : describeProbeFailure(options.source.provider, error.code, error.message, endpoint)}`,
        );
      }
      throw error;
    }

    const keptDir = options.stagingDir ?? options.defaultStagingDir;
    const stagingDir = keptDir ?? (await mkdtemp(join(tmpdir(), 'objmount-staging-')));
    if (keptDir) {
      try {
        await mkdir(stagingDir, { recursive: true, mode: 0o700 });
      } catch (error) {
        throw new UserError(`cannot use --staging-dir ${stagingDir}: ${(error as Error).message}`);
      }
      await finishPendingUploads(store, stagingDir, options, logger);
      if (!options.stagingDir) cleanups.push(() => rmdir(stagingDir)); // only if nothing was left in it
    } else {
      cleanups.push(() => rm(stagingDir, { recursive: true, force: true }));
    }

    let disk: DiskCache | undefined;
    if (options.cacheDir) {
      try {
        disk = await DiskCache.open({
          directory: options.cacheDir,
          maxBytes: options.cacheSize,
          store: `${source} at ${location}`,
          logger,
        });
      } catch (error) {
        throw new UserError(`cannot use --cache-dir ${options.cacheDir}: ${(error as NodeJS.ErrnoException).message}`);
      }
      cleanups.push(() => disk?.settled());
    }
    let kept: KeptMetadata | undefined;
    if (options.metadataDir) {
      try {
        await mkdir(options.metadataDir, { recursive: true, mode: 0o700 });
      } catch (error) {
        throw new UserError(
          `cannot use --metadata-dir ${options.metadataDir}: ${(error as Error).message} (or mount with --no-keep-metadata)`,
        );
      }
      // One file per store, bucket and prefix: what a listing there shows is what its records are of.
      const where = `${source} at ${location}\0${options.source.prefix}`;
      const id = createHash('sha256').update(where).digest('hex').slice(0, 16);
      kept = await KeptMetadata.open({
        file: join(options.metadataDir, `${options.source.bucket}-${id}.jsonl`),
        maxRecords: KEPT_RECORDS,
        logger,
      });
      const opened = kept;
      cleanups.push(() => opened.close());
    }
    const blockCache = new BlockCache(store, {
      blockSize: options.blockSize,
      memoryLimit: options.memoryLimit,
      maxConnections: options.maxConnections,
      disk,
      budget: memoryBudget,
      // Mappings of their own (the resident size stays bounded), in 4 KiB pages: a random read's
      // whole-object load fills 1 GiB of fresh memory, and fresh huge pages cost 2-6 times more
      // than small ones on the project's VM, unpredictably (bench/RESULTS.md, Random reads).
      allocate: (bytes) => largeBuffer(bytes, false),
    });
    cleanups.push(() => memoryBudget.detachCache(blockCache));
    const partBuffers = new PartBuffers(options.partSize, options.uploadConcurrency, largeBuffer, memoryBudget);
    cleanups.push(() => partBuffers.close());
    const fs = new FileSystem(store, {
      prefix: options.source.prefix,
      defaults: { uid: options.uid, gid: options.gid, fileMode: options.fileMode, dirMode: options.dirMode },
      cache: {
        fileTtlMs: options.metadataTtlSeconds * 1000,
        dirTtlMs: options.metadataTtlSeconds * 1000,
        negativeTtlMs: options.negativeTtlSeconds * 1000,
        maxEntries: 100_000,
      },
      stagingDir,
      kept,
      partSize: options.partSize,
      uploadConcurrency: options.uploadConcurrency,
      writeMode: options.writeMode,
      memoryBudget,
      partBuffers,
      dropFromPageCache,
      blockCache,
      readAhead: { minReadAhead: Math.min(MiB, options.readAhead), maxReadAhead: options.readAhead },
      logger,
    });
    return { source, fs, store, blockCache, disk, stagingDir, credentialDescription, cleanUp };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

/**
 * The root view (`objmount mount MOUNTPOINT`): every bucket the stored credentials are paired
 * with, as s3/<bucket>, az/<account>/<container> and gs/<bucket>, each opened on first use. All
 * of them share `memoryBudget`. `initial`: the pairings read at start, the first catalog's.
 */
function openRootView(
  options: MountOptions,
  deps: MountDependencies,
  stacks: Map<string, BucketStack>,
  memoryBudget: MemoryBudget,
  initial: Record<string, string>,
): RootView {
  let first: Record<string, string> | undefined = initial;
  const catalog = async (): Promise<Space[]> => {
    // The first catalog is the store read at start; later ones read it again, for new pairings.
    if (!first) deps.reloadCredentials?.();
    const pairings = first ?? (await deps.pairings?.()) ?? {};
    first = undefined;
    return Object.entries(pairings).map(([uri, name]) => {
      const source = parseSource(uri);
      const path = source.provider === 'az' ? ['az', source.account!, source.bucket] : [source.provider, source.bucket];
      return {
        path,
        open: async () => {
          const key = path.join('/');
          const staging = options.stagingDir ?? options.defaultStagingDir;
          let stack: BucketStack;
          try {
            stack = await openBucket(
              {
                ...options,
                source,
                // The stored credential says where its store is; --endpoint is for public buckets.
                endpoint: name === 'public' ? options.endpoint : undefined,
                stagingDir: options.stagingDir ? join(options.stagingDir, key.replace(/\//g, '_')) : undefined,
                defaultStagingDir: !options.stagingDir && staging ? join(staging, key.replace(/\//g, '_')) : undefined,
              },
              deps,
              memoryBudget,
            );
          } catch (error) {
            // When the bucket is tried again, a credential fixed meanwhile is found.
            deps.reloadCredentials?.();
            throw error;
          }
          stacks.set(key, stack);
          deps.logger.info(`opened ${stack.source} at ${options.mountpoint}/${key} (${stack.credentialDescription})`);
          return stack.fs;
        },
      };
    });
  };
  return new RootView({
    catalog,
    catalogTtlMs: 60_000,
    uid: options.uid,
    gid: options.gid,
    statfs: { blockSize: 4096, blocks: 2 ** 40, blocksFree: 2 ** 40, files: 2 ** 32, filesFree: 2 ** 32, nameMax: 255 },
  });
}

export async function startMount(options: MountOptions, deps: MountDependencies): Promise<RunningMount> {
  const { logger } = deps;
  // Before anything is made or asked: a directory other users may write is refused.
  const stagingDir = options.stagingDir ?? options.defaultStagingDir;
  if (stagingDir)
    await checkPrivateDirectory(stagingDir, options.stagingDir ? `--staging-dir ${stagingDir}` : `the staging directory ${stagingDir}`);
  if (options.cacheDir) await checkPrivateDirectory(options.cacheDir, `--cache-dir ${options.cacheDir}`);
  if (options.metadataDir)
    await checkPrivateDirectory(options.metadataDir, `--metadata-dir ${options.metadataDir} (or --no-keep-metadata)`);
  const mountpoint = await prepareMountpoint(options.mountpoint);
  const stacks = new Map<string, BucketStack>();
  // One budget for the whole mount: every bucket's cached blocks and upload buffers (the root
  // view's included) together stay within --memory-limit.
  const memoryBudget = new MemoryBudget(options.memoryLimit);
  let fs: MountedFileSystem;
  let source: string;
  let credentialDescription: string;
  if (options.rootView) {
    source = 'objmount';
    const pairings = (await deps.pairings?.()) ?? {};
    if (Object.keys(pairings).length === 0) {
      throw new UserError(
        "the root view shows the buckets of stored credentials, and none is paired: import one with 'objmount creds import FILE'",
      );
    }
    fs = openRootView(options, deps, stacks, memoryBudget, pairings);
    credentialDescription = `${Object.keys(pairings).length} paired bucket(s)`;
  } else {
    const stack = await openBucket(options, deps, memoryBudget);
    stacks.set('', stack);
    fs = stack.fs;
    source = stack.source;
    credentialDescription = stack.credentialDescription;
  }
  memoryBudget.followRss(); // the limit is for the process, not only what objmount counts
  const cleanUpAll = async () => {
    for (const stack of stacks.values()) await stack.cleanUp();
    memoryBudget.stop();
  };
  const cleanups: Array<() => Promise<unknown> | unknown> = [];
  const cleanUp = async () => {
    for (const cleanup of cleanups.reverse())
      await Promise.resolve()
        .then(cleanup)
        .catch(() => undefined);
    await cleanUpAll();
  };
  try {
    // Reads hand pages to the kernel, and opens drop stale ones, through the session (made just below).
    const storePages = (fh: number, offset: number, data: Buffer) => session.storePages(fh, offset, data);
    const dropPages = (path: string) => session.dropPages(path);
    const session: FuseSession = new FuseSession(
      mountpoint,
      createOperations(fs, logger, { mountpoint: canonical(mountpoint), storePages, dropPages }),
      {
        fsName: source,
        allowOther: options.allowOther,
        attrTimeoutSeconds: options.metadataTtlSeconds,
        debug: options.debugFuse,
        onOperationError: (operation, error) => logger.error(`${operation}: the operation threw, the kernel got EIO: ${String(error)}`),
      },
    );
    try {
      await session.mount();
    } catch (error) {
      throw new UserError(`cannot mount ${source} on ${mountpoint}: ${(error as Error).message}`);
    }
    const readAheadKib = Math.min(1024, Math.max(128, options.readAhead / 1024));
    if (!(await setKernelReadAhead(mountpoint, readAheadKib))) logger.debug(`kernel read-ahead left at its default (needs root)`);
    logger.info(`mounted ${options.rootView ? 'the root view' : source} on ${mountpoint} (${credentialDescription})`);

    const storeTotals = () => {
      const totals = { requests: 0, retries: 0, failures: 0, byOperation: {} as Record<string, number> };
      for (const { store } of stacks.values()) {
        totals.requests += store.stats.requests;
        totals.retries += store.stats.retries;
        totals.failures += store.stats.failures;
        for (const [op, n] of Object.entries(store.stats.byOperation)) totals.byOperation[op] = (totals.byOperation[op] ?? 0) + n;
      }
      return totals;
    };
    let stopping: Promise<void> | undefined;
    let watcher: NodeJS.Timeout | undefined;
    let signalGone!: () => void;
    const gone = new Promise<void>((resolve) => (signalGone = resolve));
    const stop = () => {
      stopping ??= (async () => {
        if (watcher) clearInterval(watcher);
        fs.stopWrites(); // what is pending now is all there is to upload
        const pending = fs.pendingFiles;
        if (pending.length > 0) logger.info(`uploading ${pending.length} pending file(s) before unmount`);
        try {
          await fs.drain();
        } catch (error) {
          logger.error(`could not upload everything before unmount: ${(error as Error).message}`);
        }
        if (await findMount(mountpoint)) {
          await session.unmount().catch(() => detach(mountpoint, true).catch(() => undefined));
        }
        await cleanUp();
        const { requests, retries, failures } = storeTotals();
        logger.info(`unmounted ${mountpoint} (${requests} store requests, ${retries} retries, ${failures} failed)`);
      })();
      return stopping;
    };
    // When the kernel mount goes away from outside (umount, fusermount -u), the FUSE loop may
    // not end while files are open there: watch the mount table, and stop serving once it is gone.
    watcher = setInterval(() => {
      void findMount(mountpoint).then((entry) => {
        if (!entry && !stopping) {
          logger.info(`${mountpoint} was unmounted`);
          void stop().then(signalGone);
        }
      });
    }, 1000);
    watcher.unref();
    // The kernel ended the connection (umount, or an abort through fusectl): stop at once.
    void session.ended.then(() => {
      if (!stopping) {
        logger.info(`${mountpoint}: the kernel ended the FUSE connection`);
        void stop().then(signalGone);
      }
    });
    const startedAt = new Date();
    const journal =
      options.writeMode === 'async'
        ? options.rootView
          ? (options.stagingDir ?? options.defaultStagingDir)
          : stacks.get('')?.stagingDir
        : undefined;
    const status = (): MountStatus => {
      const all = [...stacks.values()];
      const sum = (value: (stack: BucketStack) => number) => all.reduce((total, stack) => total + value(stack), 0);
      const hits = sum((s) => s.blockCache.stats.hits);
      const misses = sum((s) => s.blockCache.stats.misses);
      const totals = storeTotals();
      const usage = process.memoryUsage();
      return {
        source,
        mountpoint,
        pid: process.pid,
        startedAt: startedAt.toISOString(),
        uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        bytesRead: fs.stats.bytesRead,
        bytesWritten: fs.stats.bytesWritten,
        requests: totals.requests,
        requestsByOperation: totals.byOperation,
        retries: totals.retries,
        failedRequests: totals.failures,
        failedOperations: fs.stats.failedOperations,
        cache: {
          hits,
          misses,
          diskHits: sum((s) => s.blockCache.stats.diskHits),
          hitRate: hits + misses === 0 ? 0 : hits / (hits + misses),
          memoryBytes: sum((s) => s.blockCache.memoryUsed),
          diskBytes: sum((s) => s.disk?.size ?? 0),
          kernelStores: sum((s) => s.blockCache.stats.kernelStores),
          kernelStoredBytes: sum((s) => s.blockCache.stats.kernelStoredBytes),
          kernelStoresRefused: sum((s) => s.blockCache.stats.kernelStoresRefused),
        },
        memory: {
          limit: options.memoryLimit,
          cacheBytes: sum((s) => s.blockCache.memoryUsed),
          uploadBytes: memoryBudget.uploadBytes,
          rss: usage.rss,
          heapUsed: usage.heapUsed,
          external: usage.external,
        },
        pendingUploads: fs.pendingFiles.length,
        kernelInodes: session.inodeCount(),
        journal,
      };
    };
    if (options.metricsPort !== undefined) {
      try {
        cleanups.push(await serveMetrics(options.metricsPort, status));
      } catch (error) {
        await stop();
        throw new UserError(`cannot serve metrics on 127.0.0.1:${options.metricsPort}: ${(error as Error).message}`);
      }
    }
    return {
      mountpoint,
      source,
      gone,
      stop,
      status,
      journal,
      get stopping() {
        return stopping !== undefined;
      },
    };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

/**
 * Uploads what a previous daemon journaled (async mode) and did not upload, and aborts the
 * multipart uploads it left unfinished; fails the mount if it cannot.
 */
async function finishPendingUploads(store: ObjectStore, stagingDir: string, options: MountOptions, logger: Logger): Promise<void> {
  const tracker = new UploadTracker(stagingDir);
  const uploader = new FileUploader(store, { partSize: options.partSize, concurrency: options.uploadConcurrency, tracker });
  const { uploaded, failed, aborted, setAside } = await recover(stagingDir, uploader, Math.max(4, options.uploadConcurrency));
  for (const { file, problem, action } of setAside) logger.warn(`${file}: damaged record left by a previous run (${problem}); ${action}`);
  if (aborted.length > 0) logger.info(`aborted ${aborted.length} multipart upload(s) left by a previous run`);
  if (uploaded.length > 0)
    logger.info(
      `finished ${uploaded.length} upload(s) left by a previous run: ${uploaded.slice(0, 5).join(', ')}${uploaded.length > 5 ? ', …' : ''}`,
    );
  if (!options.stagingDir) {
    // The default directory is this mountpoint's alone: what is not journaled was never acknowledged.
    const removed = await removeUnjournaled(stagingDir);
    if (removed > 0) logger.info(`removed ${removed} staging file(s) of unsaved writes left by a previous run`);
  }
  if (failed.length > 0) {
    const first = failed[0]!;
    const reason = isStoreError(first.error) || first.error instanceof Error ? first.error.message : String(first.error);
    throw new UserError(
      `cannot finish ${failed.length} upload(s) left by a previous run (first: ${first.key}: ${reason}); they are kept in ${stagingDir}`,
    );
  }
}

function describeProbeFailure(
  provider: MountOptions['source']['provider'],
  code: string,
  message: string,
  endpoint: string | undefined,
): string {
  const azure = provider === 'az';
  switch (code) {
    case 'NoSuchBucket':
      return azure ? `${message}: check the container name` : `${message}: check the bucket name${endpoint ? '' : ' and --region'}`;
    case 'InvalidCredentials':
      return azure
        ? `${message}: check the account key or SAS (an expired SAS is refused too)`
        : `${message}: check the access key and secret`;
    case 'AccessDenied':
      return azure
        ? `${message}: the credential may not list this container (a SAS needs the list permission)`
        : `${message}: the key may not list this bucket`;
    case 'Unreachable':
      return `${message}: check --endpoint and the network`;
    default:
      return message;
  }
}

/** The mount's deadlines for each store request (storage/deadline.ts). */
export function storeDeadlines(options: Pick<MountOptions, 'requestTimeoutSeconds' | 'minTransferRate'>): StoreDeadlines {
  return { requestMs: Math.round(options.requestTimeoutSeconds * 1000), minBytesPerSecond: options.minTransferRate };
}

/** Says `message` in the log and, when the daemon has one, on the terminal of whoever mounted. */
function warnBoth(deps: Pick<MountDependencies, 'logger' | 'warnUser'>): (message: string) => void {
  return (message) => {
    deps.logger.warn(message);
    deps.warnUser?.(message);
  };
}

/** The endpoint a spec's credentials are sent to, if they are sent at all and it is a custom one. */
function credentialsSentTo(spec: StoreSpec): string | undefined {
  switch (spec.provider) {
    case 's3':
      return spec.signatureVersion === 'none' ? undefined : spec.endpoint;
    case 'az':
      return spec.credential.kind === 'anonymous' ? undefined : spec.endpoint;
    case 'gs':
      return spec.auth.kind === 'anonymous' ? undefined : spec.endpoint;
    case 'swift':
      return spec.credentials.storageUrl ?? spec.credentials.authUrl;
  }
}

function whatIsSent(spec: StoreSpec, credentialDescription: string): string {
  switch (spec.provider) {
    case 's3':
      return `every request's signature for ${credentialDescription}`;
    case 'az':
      return `the ${spec.credential.kind === 'sas' ? 'SAS' : 'Shared Key signature'} of ${credentialDescription}`;
    case 'gs':
      return `the access token of ${credentialDescription}`;
    case 'swift':
      return `the password or token of ${credentialDescription}`;
  }
}

/**
 * Credentials (a signature, a SAS, a token) sent over plain http to a host that is not this
 * machine can be read, and replayed, by anyone on the path: said, not refused (a private network
 * may be trusted).
 */
export function plainHttpWarning(endpoint: string | undefined, what: string): string | undefined {
  if (!endpoint) return undefined;
  let url: URL;
  try {
    url = new URL(endpoint);
  } catch {
    return undefined;
  }
  if (url.protocol !== 'http:') return undefined;
  const host = url.hostname.replace(/^\[|\]$/g, '');
  if (host === 'localhost' || host === '::1' || /^127\./.test(host)) return undefined;
  return `${what} goes to ${url.host} over plain http: anyone on the path can read it and the data; use https`;
}
