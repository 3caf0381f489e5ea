/**
 * STOPGAP (to be replaced by the S3-correct harness): s3rver in a child process with the legacy
 * OpenSSL provider, so paged listings work.
 */

import { spawn } from 'node:child_process';
import { mkdtemp, rm } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { createServer } from 'node:net';

import { CreateBucketCommand, S3Client } from '@aws-sdk/client-s3';

const require = createRequire(import.meta.url);

export const LOCAL_S3_ACCESS_KEY = 'S3RVER';
export const LOCAL_S3_SECRET_KEY = 'S3RVER';

export interface LocalS3ServerOptions {
  directory?: string;
  port?: number;
  buckets?: string[];
  silent?: boolean;
}

export interface LocalS3Server {
  endpoint: string;
  port: number;
  directory: string;
  close(): Promise<void>;
}

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
    s.on('error', reject);
  });
}

export async function startLocalS3Server(options: LocalS3ServerOptions = {}): Promise<LocalS3Server> {
  const owned = options.directory === undefined;
  const directory = options.directory ?? (await mkdtemp(join(tmpdir(), 'objmount-s3-')));
  const port = options.port || (await freePort());
  const bin = join(dirname(require.resolve('s3rver/package.json')), 'bin', 's3rver.js');
  const child = spawn(process.execPath, ['--openssl-legacy-provider', bin, '-d', directory, '-a', '127.0.0.1', '-p', String(port), '--silent'], { stdio: 'ignore' });
  const endpoint = `http://127.0.0.1:${port}`;
  const client = new S3Client({ endpoint, region: 'us-east-1', forcePathStyle: true, credentials: { accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY } });
  for (let i = 0; ; i++) {
    try {
      for (const Bucket of options.buckets ?? []) await client.send(new CreateBucketCommand({ Bucket }));
      break;
    } catch (error) {
      if (i > 100) throw error;
      await sleep(50);
    }
  }
  client.destroy();
  return {
    endpoint,
    port,
    directory,
    async close() {
      child.kill();
      if (owned) await rm(directory, { recursive: true, force: true });
    },
  };
}
