/**
 * Composition root of one mount: checks the mountpoint, resolves credentials, checks the bucket,
 * builds the store, the file system and the FUSE session, and tears them down in order.
 * Every failure before the mount is live leaves nothing behind and becomes a `UserError`.
 */

import { mkdir, mkdtemp, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { MiB, type MountOptions, formatSource } from '../config/mount-options.js';
import { CredentialError, type CredentialResolver } from '../creds/resolver.js';
import { FileSystem } from '../fs/file-system.js';
import { MemoryBudget } from '../fs/memory-budget.js';
import { BlockCache } from '../fs/read/block-cache.js';
import { DiskCache } from '../fs/read/disk-cache.js';
import { FileUploader } from '../fs/write/file-uploader.js';
import { UploadTracker, recover, removeUnjournaled } from '../fs/write/journal.js';
import { FuseSession, hasUtimensFix } from '../fuse/binding.js';
import { createOperations } from '../fuse/operations.js';
import type { Logger } from '../log/logger.js';
import { type ObjectStore, isStoreError } from '../storage/object-store.js';
import { S3Store, type StoreStats } from '../storage/s3-store.js';
import { detach, findMount, prepareMountpoint, setKernelReadAhead } from './mountpoint.js';
import { type MountStatus, serveMetrics } from './status.js';
import { UserError } from './user-error.js';

export interface RunningMount {
  readonly mountpoint: string;
  readonly source: string;
  /** Resolves when the mount goes away without `stop` (unmounted from outside). */
  readonly gone: Promise<void>;
  /** Uploads what is pending, detaches the mount and releases everything. Idempotent. */
  stop(): Promise<void>;
  /** What the mount has done so far. */
  status(): MountStatus;
  /** Where async closes are journaled (async write mode), for the message of a forced stop. */
  readonly journal?: string;
}

export interface MountDependencies {
  resolver: CredentialResolver;
  logger: Logger;
}

export async function startMount(options: MountOptions, deps: MountDependencies): Promise<RunningMount> {
  const { logger } = deps;
  const source = formatSource(options.source);
  const mountpoint = await prepareMountpoint(options.mountpoint);

  // The GCS SDK is large: it is loaded only for gs:// mounts.
  const { store, credentialDescription, endpoint, location, probeHints } =
    options.source.provider === 'gs' ? await (await import('./gcs-store-factory.js')).openGcsStore(options, logger) : await openS3Store(options, deps);

  const cleanups: Array<() => Promise<unknown> | unknown> = [() => store.destroy()];
  const cleanUp = async () => {
    for (const cleanup of cleanups.reverse()) await Promise.resolve().then(cleanup).catch(() => undefined);
  };
  try {
    try {
      await store.probe(options.source.prefix);
    } catch (error) {
      if (isStoreError(error)) {
        const hint = probeHints?.[error.code];
        throw new UserError(`cannot mount ${source}: ${hint ? `${error.message}: ${hint}` : describeProbeFailure(error.code, error.message, endpoint)}`);
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
        disk = await DiskCache.open({ directory: options.cacheDir, maxBytes: options.cacheSize, store: `${source} at ${location}`, logger });
      } catch (error) {
        throw new UserError(`cannot use --cache-dir ${options.cacheDir}: ${(error as NodeJS.ErrnoException).message}`);
      }
      cleanups.push(() => disk?.settled());
    }
    const memoryBudget = new MemoryBudget(options.memoryLimit);
    const blockCache = new BlockCache(store, {
      blockSize: options.blockSize,
      memoryLimit: options.memoryLimit,
      maxConnections: options.maxConnections,
      disk,
      budget: memoryBudget,
    });
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
      partSize: options.partSize,
      uploadConcurrency: options.uploadConcurrency,
      writeMode: options.writeMode,
      memoryBudget,
      blockCache,
      readAhead: { minReadAhead: Math.min(MiB, options.readAhead), maxReadAhead: options.readAhead },
      logger,
    });
    if (!hasUtimensFix()) {
      logger.warn('fuse-native was not rebuilt with the utimens fix (scripts/build-fuse-native): mtimes set by touch/cp -p/rsync will be wrong');
    }
    const session = new FuseSession(mountpoint, createOperations(fs, logger), {
      fsName: source,
      allowOther: options.allowOther,
      attrTimeoutSeconds: options.metadataTtlSeconds,
      debug: options.debugFuse,
    });
    try {
      await session.mount();
    } catch (error) {
      throw new UserError(`cannot mount ${source} on ${mountpoint}: ${(error as Error).message}`);
    }
    const readAheadKib = Math.min(1024, Math.max(128, options.readAhead / 1024));
    if (!(await setKernelReadAhead(mountpoint, readAheadKib))) logger.debug(`kernel read-ahead left at its default (needs root)`);
    logger.info(`mounted ${source} on ${mountpoint} (${credentialDescription})`);

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
        const { requests, retries, failures } = store.stats;
        logger.info(`unmounted ${mountpoint} (${requests} store requests, ${retries} retries, ${failures} failed)`);
      })();
      return stopping;
    };
    // fuse-native does not tell us when the kernel mount goes away (umount, fusermount -u):
    // look for it, and stop serving once it is gone.
    watcher = setInterval(() => {
      void findMount(mountpoint).then((entry) => {
        if (!entry && !stopping) {
          logger.info(`${mountpoint} was unmounted`);
          void stop().then(signalGone);
        }
      });
    }, 1000);
    watcher.unref();
    const startedAt = new Date();
    const status = (): MountStatus => {
      const cache = blockCache.stats;
      const lookups = cache.hits + cache.misses;
      return {
        source,
        mountpoint,
        pid: process.pid,
        startedAt: startedAt.toISOString(),
        uptimeSeconds: Math.round((Date.now() - startedAt.getTime()) / 1000),
        bytesRead: fs.stats.bytesRead,
        bytesWritten: fs.stats.bytesWritten,
        requests: store.stats.requests,
        requestsByOperation: { ...store.stats.byOperation },
        retries: store.stats.retries + cache.retries,
        failedRequests: store.stats.failures,
        failedOperations: fs.stats.failedOperations,
        cache: {
          hits: cache.hits,
          misses: cache.misses,
          diskHits: cache.diskHits,
          hitRate: lookups === 0 ? 0 : cache.hits / lookups,
          memoryBytes: blockCache.memoryUsed,
          diskBytes: disk?.size ?? 0,
        },
        pendingUploads: fs.pendingFiles.length,
        journal: options.writeMode === 'async' ? stagingDir : undefined,
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
    return { mountpoint, source, gone, stop, status, journal: options.writeMode === 'async' ? stagingDir : undefined };
  } catch (error) {
    await cleanUp();
    throw error;
  }
}

/** What a mount needs of its store beyond `ObjectStore`: a probe, request counts, and teardown. */
type MountedStore = ObjectStore & { readonly stats: StoreStats; probe(prefix: string): Promise<void>; destroy(): void };

interface OpenedStore {
  store: MountedStore;
  credentialDescription: string;
  endpoint: string | undefined;
  /** Names the store in the disk cache's identity: the endpoint, or the region. */
  location: string;
  /** What a failed probe should suggest, by StoreError code (else `describeProbeFailure`). */
  probeHints?: Record<string, string>;
}

/** The S3 store of an `s3://` mount, with the credential the resolver finds for the bucket. */
async function openS3Store(options: MountOptions, deps: MountDependencies): Promise<OpenedStore> {
  let credential;
  try {
    credential = await deps.resolver.resolveS3(options.source.bucket);
  } catch (error) {
    if (error instanceof CredentialError) throw new UserError(error.message);
    throw error;
  }
  const credentialDescription = `access key ${credential.accessKeyId} from ${credential.source}`;
  // The command line first, then what the stored credential says about its store.
  const endpoint = options.endpoint ?? credential.endpoint;
  const region = options.region ?? credential.region ?? options.defaultRegion;
  const pathStyle = options.pathStyle ?? credential.pathStyle ?? endpoint !== undefined;
  const store = new S3Store({
    bucket: options.source.bucket,
    endpoint,
    region,
    pathStyle,
    credentials: credential.provider,
    credentialDescription,
    maxConnections: options.maxConnections,
    maxParts: options.maxUploadParts,
    logger: deps.logger,
  });
  return { store, credentialDescription, endpoint, location: endpoint ?? region };
}

/**
 * Uploads what a previous daemon journaled (async mode) and did not upload, and aborts the
 * multipart uploads it left unfinished; fails the mount if it cannot.
 */
async function finishPendingUploads(store: ObjectStore, stagingDir: string, options: MountOptions, logger: Logger): Promise<void> {
  const tracker = new UploadTracker(stagingDir);
  const uploader = new FileUploader(store, { partSize: options.partSize, concurrency: options.uploadConcurrency, tracker });
  const { uploaded, failed, aborted } = await recover(stagingDir, uploader, Math.max(4, options.uploadConcurrency));
  if (aborted.length > 0) logger.info(`aborted ${aborted.length} multipart upload(s) left by a previous run`);
  if (uploaded.length > 0) logger.info(`finished ${uploaded.length} upload(s) left by a previous run: ${uploaded.slice(0, 5).join(', ')}${uploaded.length > 5 ? ', …' : ''}`);
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

function describeProbeFailure(code: string, message: string, endpoint: string | undefined): string {
  switch (code) {
    case 'NoSuchBucket':
      return `${message}: check the bucket name${endpoint ? '' : ' and --region'}`;
    case 'InvalidCredentials':
      return `${message}: check the access key and secret`;
    case 'AccessDenied':
      return `${message}: the key may not list this bucket`;
    case 'Unreachable':
      return `${message}: check --endpoint and the network`;
    default:
      return message;
  }
}
