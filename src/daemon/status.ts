/**
 * What a running mount reports about itself (`objmount status`, `--metrics-port`), and the
 * servers that report it: a control socket per mount (HTTP on a Unix socket beside the mount's
 * registry record) and, when asked for, Prometheus metrics on 127.0.0.1.
 */

import { rm } from 'node:fs/promises';
import { type Server, createServer, get } from 'node:http';

import { Counter, Gauge, Registry } from 'prom-client';

export interface MountStatus {
  source: string;
  mountpoint: string;
  pid: number;
  startedAt: string;
  uptimeSeconds: number;
  bytesRead: number;
  bytesWritten: number;
  /** Store requests in total and by operation. */
  requests: number;
  requestsByOperation: Record<string, number>;
  retries: number;
  /** Store requests that failed after their retries, and file operations that failed. */
  failedRequests: number;
  failedOperations: number;
  /**
   * The block cache; and the regions of files read at random that were handed to the kernel's page
   * cache (FUSE_NOTIFY_STORE), their bytes, and the stores refused (the file may be written).
   */
  cache: {
    hits: number;
    misses: number;
    diskHits: number;
    hitRate: number;
    memoryBytes: number;
    diskBytes: number;
    kernelStores: number;
    kernelStoredBytes: number;
    kernelStoresRefused: number;
  };
  /**
   * Where the daemon's memory is: --memory-limit, what of it cached blocks and upload part
   * buffers hold, and the process as a whole (resident; V8's heap; Buffers outside it).
   */
  memory: { limit: number; cacheBytes: number; uploadBytes: number; rss: number; heapUsed: number; external: number };
  /** Files with changes not yet in the store (open, or waiting for an async upload). */
  pendingUploads: number;
  /**
   * Inodes the kernel holds of this mount (from its lookups, and from directories read with
   * attributes), with their directories and the root: it falls as the kernel forgets them.
   */
  kernelInodes: number;
  /** Where async closes are journaled (async write mode only). */
  journal?: string;
}

/** Serves `status()` as JSON at GET /status on a Unix socket; resolves with a function that closes it. */
export async function serveControlSocket(path: string, status: () => MountStatus): Promise<() => Promise<void>> {
  await rm(path, { force: true }); // left by a daemon that was killed
  const server = createServer((request, response) => {
    if (request.method === 'GET' && request.url === '/status') {
      response.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(status()));
    } else {
      response.writeHead(404).end();
    }
  });
  await listen(server, () => server.listen(path));
  return async () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // a client's idle keep-alive connection must not hold the daemon
    await closed;
    await rm(path, { force: true });
  };
}

/** Asks the daemon behind `socketPath` for its status. */
export function queryStatus(socketPath: string, timeoutMs = 3000): Promise<MountStatus> {
  return new Promise((resolve, reject) => {
    const request = get({ socketPath, path: '/status', timeout: timeoutMs, agent: false }, (response) => {
      const chunks: Buffer[] = [];
      response.on('data', (chunk: Buffer) => chunks.push(chunk));
      response.on('end', () => {
        try {
          resolve(JSON.parse(Buffer.concat(chunks).toString('utf8')) as MountStatus);
        } catch (error) {
          reject(error as Error);
        }
      });
    });
    request.on('timeout', () => request.destroy(new Error('no answer')));
    request.on('error', reject);
  });
}

/** Prometheus metrics of one mount at http://127.0.0.1:PORT/metrics. */
export async function serveMetrics(port: number, status: () => MountStatus): Promise<() => Promise<void>> {
  const registry = new Registry();
  const labels = () => {
    const s = status();
    return { s, label: { source: s.source, mountpoint: s.mountpoint } };
  };
  const counter = (name: string, help: string, value: (s: MountStatus) => number) =>
    new Counter({
      name,
      help,
      labelNames: ['source', 'mountpoint'],
      registers: [registry],
      collect() {
        const { s, label } = labels();
        this.reset();
        this.inc(label, value(s));
      },
    });
  const gauge = (name: string, help: string, value: (s: MountStatus) => number) =>
    new Gauge({
      name,
      help,
      labelNames: ['source', 'mountpoint'],
      registers: [registry],
      collect() {
        const { s, label } = labels();
        this.set(label, value(s));
      },
    });
  counter('objmount_bytes_read_total', 'Bytes read through the mount.', (s) => s.bytesRead);
  counter('objmount_bytes_written_total', 'Bytes written through the mount.', (s) => s.bytesWritten);
  counter('objmount_store_requests_total', 'Requests sent to the store.', (s) => s.requests);
  counter('objmount_store_retries_total', 'Retries of store requests.', (s) => s.retries);
  counter('objmount_store_failures_total', 'Store requests that failed after their retries.', (s) => s.failedRequests);
  counter('objmount_failed_operations_total', 'File operations answered with an error.', (s) => s.failedOperations);
  counter('objmount_cache_hits_total', 'Block reads served from memory or by a GET already in flight.', (s) => s.cache.hits);
  counter('objmount_cache_misses_total', 'Block reads that needed the disk tier or the store.', (s) => s.cache.misses);
  counter(
    'objmount_kernel_stored_bytes_total',
    "Bytes of files read at random handed to the kernel's page cache.",
    (s) => s.cache.kernelStoredBytes,
  );
  gauge('objmount_cache_memory_bytes', 'Bytes of blocks held in memory or being fetched.', (s) => s.cache.memoryBytes);
  gauge('objmount_upload_buffer_bytes', 'Bytes of upload part buffers held in memory.', (s) => s.memory.uploadBytes);
  gauge('objmount_memory_limit_bytes', 'The --memory-limit for cached blocks and upload buffers.', (s) => s.memory.limit);
  gauge('objmount_resident_memory_bytes', 'Resident memory of the daemon process.', (s) => s.memory.rss);
  gauge('objmount_cache_disk_bytes', 'Bytes of blocks in the disk tier.', (s) => s.cache.diskBytes);
  gauge('objmount_pending_uploads', 'Files with changes not yet in the store.', (s) => s.pendingUploads);
  gauge('objmount_kernel_inodes', 'Inodes of the mount the kernel holds, with their directories.', (s) => s.kernelInodes);
  gauge('objmount_uptime_seconds', 'Seconds since the mount went live.', (s) => s.uptimeSeconds);

  const server = createServer((request, response) => {
    if (request.url !== '/metrics') {
      response.writeHead(404).end();
      return;
    }
    registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': registry.contentType }).end(text),
      (error: Error) => response.writeHead(500).end(error.message),
    );
  });
  await listen(server, () => server.listen(port, '127.0.0.1'));
  return () => {
    const closed = new Promise<void>((resolve) => server.close(() => resolve()));
    server.closeAllConnections(); // Prometheus keeps its connection open between scrapes
    return closed;
  };
}

function listen(server: Server, start: () => void): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.once('listening', () => {
      server.off('error', reject);
      resolve();
    });
    start();
  });
}
