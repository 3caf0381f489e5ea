/**
 * A proxy in front of the GCS emulator that adds the one request the emulator lacks: `compose`
 * (it answers 501). Every other request goes to the emulator unchanged.
 *
 * This is NOT a test of GCS's compose: the shim accepts what it was written to accept. It lets the
 * tests check objmount's side of a composite upload against real uploads, listings and deletes —
 * the requests it sends (order, pinned generations, destination metadata), the tree above 32
 * parts, and the clean-up — and it records every compose request for them. Its compose concatenates
 * the sources (read from the emulator) into the destination (written to the emulator) and answers
 * 412 when a source's generation is not the one named, as GCS documents.
 *
 * Plain JavaScript, so that it also runs as a process of its own (`node gcs-compose-shim.mjs
 * EMULATOR_ENDPOINT`, forked with an IPC channel: it sends {port}), for FUSE tests, whose blocking
 * file calls would deadlock a shim in their own event loop.
 */

import { createServer, request } from 'node:http';
import { fileURLToPath } from 'node:url';

import { Storage } from '@google-cloud/storage';

/**
 * @typedef {{ bucket: string, destination: string, body: { destination?: { contentType?: string, metadata?: Record<string, string> }, sourceObjects: Array<{ name: string, generation?: string | number }> } }} ComposeRequest
 * @typedef {{ endpoint: string, requests: ComposeRequest[], close(): Promise<void> }} ComposeShim
 */

const COMPOSE = /^\/storage\/v1\/b\/([^/]+)\/o\/([^/?]+)\/compose$/;

/** @param {string} emulatorEndpoint @returns {Promise<ComposeShim>} */
export async function startComposeShim(emulatorEndpoint) {
  const target = new URL(emulatorEndpoint);
  const storage = new Storage({ apiEndpoint: emulatorEndpoint, projectId: 'test' });
  /** @type {ComposeRequest[]} */
  const requests = [];

  const compose = async (req, res, bucket, destination) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8'));
    requests.push({ bucket, destination, body });
    const answer = (status, json) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    if (!Array.isArray(body.sourceObjects) || body.sourceObjects.length < 1 || body.sourceObjects.length > 32) {
      return answer(400, {
        error: {
          code: 400,
          message: 'The number of source components provided must be between 1 and 32.',
          errors: [{ reason: 'invalid' }],
        },
      });
    }
    const parts = [];
    for (const source of body.sourceObjects) {
      const file = storage.bucket(bucket).file(source.name);
      const [exists] = await file.exists();
      if (!exists)
        return answer(404, { error: { code: 404, message: `No such object: ${bucket}/${source.name}`, errors: [{ reason: 'notFound' }] } });
      const [metadata] = await file.getMetadata();
      if (source.generation !== undefined && String(metadata.generation) !== String(source.generation)) {
        return answer(412, {
          error: {
            code: 412,
            message: 'At least one of the pre-conditions you specified did not hold.',
            errors: [{ reason: 'conditionNotMet' }],
          },
        });
      }
      parts.push((await file.download())[0]);
    }
    const out = storage.bucket(bucket).file(destination);
    await out.save(Buffer.concat(parts), {
      resumable: false,
      metadata: { contentType: body.destination?.contentType, metadata: body.destination?.metadata ?? {} },
    });
    const [resource] = await out.getMetadata();
    return answer(200, resource);
  };

  const proxy = (req, res) => {
    const upstream = request(
      { host: target.hostname, port: target.port, method: req.method, path: req.url, headers: { ...req.headers, host: target.host } },
      (response) => {
        res.writeHead(response.statusCode ?? 502, response.headers);
        response.pipe(res);
      },
    );
    upstream.on('error', (error) => {
      res.writeHead(502);
      res.end(String(error));
    });
    req.pipe(upstream);
  };

  const server = createServer((req, res) => {
    const match = req.method === 'POST' ? COMPOSE.exec(new URL(req.url ?? '/', 'http://shim').pathname) : null;
    if (!match) return proxy(req, res);
    compose(req, res, decodeURIComponent(match[1]), decodeURIComponent(match[2])).catch((error) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const shim = await startComposeShim(process.argv[2]);
  process.send?.({ port: Number(new URL(shim.endpoint).port) });
  process.disconnect?.();
  const stop = () => shim.close().then(() => process.exit(0));
  process.on('SIGTERM', stop);
  process.stdin.on('end', stop);
  process.stdin.resume();
}
