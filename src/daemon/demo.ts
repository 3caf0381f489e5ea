/**
 * `objmount demo`: an embedded S3-compatible server on 127.0.0.1 with a sample bucket, mounted in
 * the foreground, so a newcomer sees objmount work without a cloud account. Ctrl-C unmounts,
 * stops the server and removes its data.
 */

import { mkdir, mkdtemp, readdir, rm, rmdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, relative, resolve } from 'node:path';

import { UserError } from '../errors/user-error.js';
import { serveUntilStopped } from './serve.js';
import { defaultMemoryLimit, DEFAULTS } from '../config/mount-options.js';
import { StaticResolver } from '../creds/resolver.js';
import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, startLocalS3Server } from '../demo/local-s3-server.js';
import { S_IFDIR, S_IFREG, metadataOf, newAttributes } from '../fs/attributes.js';
import { createLogger } from '../log/logger.js';
import { createStore } from '../storage/store-factory.js';
import { startMount } from './mount.js';

const BUCKET = 'demo';

const SAMPLE_FILES: Record<string, string> = {
  'README.txt':
    'This bucket lives in an S3-compatible server that objmount started on 127.0.0.1.\n' +
    'Everything you do in this directory becomes objects in the bucket.\n',
  'hello.txt': 'Hello from object storage!\n',
  'notes/ideas.md': '# Ideas\n\n- mount every bucket\n- make it fast\n',
  'notes/2026/november.md': 'Implicit directories (notes/2026/) come from key prefixes.\n',
  'data/numbers.csv': `${['n,square', ...Array.from({ length: 100 }, (_, i) => `${i},${i * i}`)].join('\n')}\n`,
};

export interface DemoOptions {
  mountpoint: string;
}

export async function runDemo(options: DemoOptions): Promise<void> {
  const logger = createLogger((line) => process.stderr.write(line), 'warn');
  const mountpoint = resolve(options.mountpoint);
  let createdMountpoint = false;
  try {
    await mkdir(mountpoint);
    createdMountpoint = true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new UserError(`cannot create ${mountpoint}: ${(error as Error).message}`);
    }
  }
  const dataDir = await mkdtemp(join(tmpdir(), 'objmount-demo-data-'));
  const server = await startLocalS3Server({ directory: dataDir, buckets: [BUCKET] });
  const cleanUp = async () => {
    await server.close().catch(() => undefined);
    await rm(dataDir, { recursive: true, force: true });
    if (createdMountpoint) await rmdir(mountpoint).catch(() => undefined);
  };
  try {
    await seed(server.endpoint);
    const resolver = new StaticResolver(LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, 'the demo server');
    const mount = await startMount(
      {
        source: { provider: 's3', bucket: BUCKET, prefix: '' },
        mountpoint,
        endpoint: server.endpoint,
        defaultRegion: DEFAULTS.region,
        pathStyle: true,
        insecure: false,
        foreground: true,
        uid: process.getuid?.() ?? 0,
        gid: process.getgid?.() ?? 0,
        fileMode: DEFAULTS.fileMode,
        dirMode: DEFAULTS.dirMode,
        metadataTtlSeconds: DEFAULTS.metadataTtlSeconds,
        negativeTtlSeconds: DEFAULTS.negativeTtlSeconds,
        partSize: DEFAULTS.partSize,
        uploadConcurrency: DEFAULTS.uploadConcurrency,
        maxUploadParts: DEFAULTS.maxUploadParts,
        maxConnections: DEFAULTS.maxConnections,
        requestTimeoutSeconds: DEFAULTS.requestTimeoutSeconds,
        minTransferRate: DEFAULTS.minTransferRate,
        blockSize: DEFAULTS.blockSize,
        readAhead: DEFAULTS.readAhead,
        memoryLimit: defaultMemoryLimit(0), // the smallest default: the demo's files are small
        cacheSize: DEFAULTS.cacheSize,
        writeMode: 'sync',
        allowOther: false,
        logLevel: 'warn',
        debugFuse: false,
      },
      { resolver, logger },
    );
    const shown = relative(process.cwd(), mountpoint) || '.';
    const listing = (await readdir(mountpoint)).sort().join('  ');
    process.stdout.write(
      [
        `objmount demo: bucket s3://${BUCKET} on the embedded S3 server at ${server.endpoint}`,
        `is mounted on ${mountpoint}`,
        '',
        `  $ ls ${shown}`,
        `  ${listing}`,
        '',
        'Try, in another terminal:',
        `  ls -lR ${shown}`,
        `  cat ${shown}/hello.txt`,
        `  echo "written through FUSE" > ${shown}/new.txt && cat ${shown}/new.txt`,
        `  cp -r /usr/share/doc/bash ${shown}/ && du -sh ${shown}/bash`,
        `  mv ${shown}/notes ${shown}/archive && ls ${shown}/archive`,
        '',
        'Press Ctrl-C to unmount and stop the server.',
        '',
      ].join('\n'),
    );
    await serveUntilStopped(mount, logger);
    process.stdout.write('objmount demo: unmounted, server stopped.\n');
  } finally {
    await cleanUp();
  }
  process.exit(0);
}

async function seed(endpoint: string): Promise<void> {
  const credentials = async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY });
  const store = await createStore(
    { provider: 's3', bucket: BUCKET, endpoint, region: DEFAULTS.region, pathStyle: true, credentials },
    { credentialDescription: 'the demo key', purpose: 'mount' },
  );
  const defaults = { uid: process.getuid?.() ?? 0, gid: process.getgid?.() ?? 0, fileMode: 0o644, dirMode: 0o755 };
  try {
    const now = Date.now();
    for (const [key, text] of Object.entries(SAMPLE_FILES)) {
      const attrs = { ...newAttributes('file', 0o644, defaults, now), mode: S_IFREG | 0o644 };
      await store.put(key, Buffer.from(text), { metadata: metadataOf(attrs), contentType: 'text/plain' });
    }
    const dir = { ...newAttributes('directory', 0o755, defaults, now), mode: S_IFDIR | 0o755 };
    await store.put('photos/', Buffer.alloc(0), { metadata: metadataOf(dir), contentType: 'application/x-directory' });
  } finally {
    store.destroy();
  }
}
