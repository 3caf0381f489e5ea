#!/usr/bin/env node
/**
 * The daemon's CPU per store request: µs of CPU (user + system, this process only; the local S3
 * server runs in a process of its own) per HEAD and per small GET through `S3Store` (the store a
 * mount uses), beside an `S3Client` as the SDK makes it (checksums only when required, keep-alive
 * sockets: what `S3Store` was before its per-request cuts), and a floor: the same requests signed
 * with the SDK's own SigV4 signer and sent with plain `node:http` on a keep-alive agent (what any
 * S3 client must at least do).
 *
 *   node bench/request-cpu.mjs                 # 3,000 requests per case (run scripts/setup first)
 *   BENCH_REQUESTS=1000 node bench/request-cpu.mjs
 *
 *   BENCH_ONLY=PUT node bench/request-cpu.mjs  # the cases whose name starts with one of these
 *
 * Cases, each with 1 and with 16 requests in flight: HEAD of a 100-byte object, GET of that
 * object whole, GET of a 4 KiB range of a 1 MiB object (a random read's request), PUT of a 4 KiB
 * object with a file's metadata (a small file's close). Each case runs a warm-up of 300 requests
 * first, and the median of 3 rounds is printed. A PUT's SHA-256 of its body (SigV4's payload
 * hash) is part of every client's CPU, the floor's included.
 */

import { request as httpRequest, Agent } from 'node:http';
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';

import { GetObjectCommand, KEY, SECRET, PutObjectCommand, S3Client, median, root, startServer } from './lib.mjs';

const N = Number(process.env.BENCH_REQUESTS ?? 3000);
const BUCKET = 'cpu';
const { S3Store } = await import(join(root, 'dist/storage/s3-store.js'));
const { SignatureV4 } = await import('@smithy/signature-v4');

const { server, sdk } = await startServer([BUCKET]);
await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'small', Body: randomBytes(100) }));
await sdk.send(new PutObjectCommand({ Bucket: BUCKET, Key: 'mib', Body: randomBytes(1024 * 1024) }));
sdk.destroy();
const fourKiB = randomBytes(4096);
/** What a mount puts on a file it writes (fs/attributes.ts metadataOf). */
const fileMetadata = {
  mode: '33188',
  uid: '0',
  gid: '0',
  mtime: '1764800000.123456789',
  ctime: '1764800000.123456789',
  atime: '1764800000.123456789',
};

const store = new S3Store({
  bucket: BUCKET,
  endpoint: server.endpoint,
  region: 'us-east-1',
  pathStyle: true,
  credentials: async () => ({ accessKeyId: KEY, secretAccessKey: SECRET }),
  credentialDescription: 'the local server key',
  maxConnections: 32,
});

const { HeadObjectCommand } = await import('@aws-sdk/client-s3');
const { NodeHttpHandler } = await import('@smithy/node-http-handler');
const plain = new S3Client({
  endpoint: server.endpoint,
  region: 'us-east-1',
  forcePathStyle: true,
  credentials: { accessKeyId: KEY, secretAccessKey: SECRET },
  requestChecksumCalculation: 'WHEN_REQUIRED',
  responseChecksumValidation: 'WHEN_REQUIRED',
  requestHandler: new NodeHttpHandler({ httpAgent: new Agent({ keepAlive: true, maxSockets: 32 }) }),
});
const drain = async (out) => {
  for await (const _chunk of out.Body) {
    // read it all, as S3Store does
  }
};

// ---- the floor: SigV4 + node:http ---------------------------------------------------------------
const { createHash, createHmac } = await import('node:crypto');
/** A SHA-256 for the signer from node:crypto (what the SDK itself uses in Node). */
class NodeSha256 {
  constructor(secret) {
    this.hash = secret ? createHmac('sha256', secret) : createHash('sha256');
  }
  update(data) {
    this.hash.update(data);
  }
  async digest() {
    return new Uint8Array(this.hash.digest());
  }
}
const signer = new SignatureV4({
  service: 's3',
  region: 'us-east-1',
  credentials: { accessKeyId: KEY, secretAccessKey: SECRET },
  sha256: NodeSha256,
});
const agent = new Agent({ keepAlive: true, maxSockets: 32 });
const url = new URL(server.endpoint);
async function raw(method, key, headers = {}, body = undefined) {
  const payloadHash = body ? createHash('sha256').update(body).digest('hex') : 'UNSIGNED-PAYLOAD';
  const sized = body ? { 'content-length': String(body.length) } : {};
  const signed = await signer.sign({
    method,
    protocol: 'http:',
    hostname: url.hostname,
    port: Number(url.port),
    path: `/${BUCKET}/${key}`,
    headers: { host: url.host, 'x-amz-content-sha256': payloadHash, ...sized, ...headers },
  });
  return new Promise((resolve, reject) => {
    const req = httpRequest({ agent, method, host: url.hostname, port: url.port, path: signed.path, headers: signed.headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => (res.statusCode >= 300 ? reject(new Error(`HTTP ${res.statusCode}`)) : resolve(Buffer.concat(chunks))));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

// ---- the cases ----------------------------------------------------------------------------------
const cases = {
  'HEAD 100 B object': {
    store: () => store.head('small'),
    sdk: () => plain.send(new HeadObjectCommand({ Bucket: BUCKET, Key: 'small' })),
    floor: () => raw('HEAD', 'small'),
  },
  'GET 100 B object': {
    store: () => store.get('small'),
    sdk: () => plain.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'small' })).then(drain),
    floor: () => raw('GET', 'small'),
  },
  'GET 4 KiB range': {
    store: () => store.get('mib', { range: { start: 8192, end: 8192 + 4095 } }),
    sdk: () => plain.send(new GetObjectCommand({ Bucket: BUCKET, Key: 'mib', Range: 'bytes=8192-12287' })).then(drain),
    floor: () => raw('GET', 'mib', { range: 'bytes=8192-12287' }),
  },
  'PUT 4 KiB object': {
    store: () => store.put('put', fourKiB, { metadata: fileMetadata, contentType: 'application/octet-stream' }),
    sdk: () =>
      plain.send(
        new PutObjectCommand({
          Bucket: BUCKET,
          Key: 'put',
          Body: fourKiB,
          ContentLength: fourKiB.length,
          Metadata: fileMetadata,
          ContentType: 'application/octet-stream',
        }),
      ),
    floor: () =>
      raw(
        'PUT',
        'put',
        {
          'content-type': 'application/octet-stream',
          ...Object.fromEntries(Object.entries(fileMetadata).map(([k, v]) => [`x-amz-meta-${k}`, v])),
        },
        fourKiB,
      ),
  },
};
const only = process.env.BENCH_ONLY?.split(',');
for (const name of Object.keys(cases)) if (only && !only.some((prefix) => name.startsWith(prefix))) delete cases[name];

async function run(fn, count, inFlight) {
  let next = 0;
  const worker = async () => {
    while (next++ < count) await fn();
  };
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  await Promise.all(Array.from({ length: inFlight }, worker));
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  return { cpuUs: (cpu.user + cpu.system) / count, perSecond: count / seconds };
}

const rows = [];
for (const [name, c] of Object.entries(cases)) {
  for (const inFlight of [1, 16]) {
    for (const [client, fn] of [
      ['S3Client (SDK defaults)', c.sdk],
      ['S3Store', c.store],
      ['SigV4 + node:http', c.floor],
    ]) {
      await run(fn, 300, inFlight); // warm-up: sockets open, code optimised
      const rounds = [];
      for (let i = 0; i < 3; i++) rounds.push(await run(fn, N, inFlight));
      rows.push({ name, inFlight, client, cpuUs: median(rounds.map((r) => r.cpuUs)), perSecond: median(rounds.map((r) => r.perSecond)) });
    }
  }
}
store.destroy();
plain.destroy();
agent.destroy();
await server.close();

console.log(
  `\nCPU per store request, ${N} requests per round, median of 3, local S3 server on 127.0.0.1, ${new Date().toISOString().slice(0, 16)}Z\n`,
);
console.log('| request | in flight | client | CPU µs/request | requests/s |');
console.log('| --- | ---: | --- | ---: | ---: |');
for (const r of rows) console.log(`| ${r.name} | ${r.inFlight} | ${r.client} | ${r.cpuUs.toFixed(0)} | ${r.perSecond.toFixed(0)} |`);
process.exit(0);
