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
 * In-process: use it only from tests that make no blocking file calls (no FUSE mount).
 */

import { type IncomingMessage, type ServerResponse, createServer, request } from 'node:http';

import { Storage } from '@google-cloud/storage';

export interface ComposeRequest {
  bucket: string;
  destination: string;
  body: {
    destination?: { contentType?: string; metadata?: Record<string, string> };
    sourceObjects: Array<{ name: string; generation?: string | number }>;
  };
}

export interface ComposeShim {
  endpoint: string;
  requests: ComposeRequest[];
  close(): Promise<void>;
}

const COMPOSE = /^\/storage\/v1\/b\/([^/]+)\/o\/([^/?]+)\/compose$/;

export async function startComposeShim(emulatorEndpoint: string): Promise<ComposeShim> {
  const target = new URL(emulatorEndpoint);
  const storage = new Storage({ apiEndpoint: emulatorEndpoint, projectId: 'test' });
  const requests: ComposeRequest[] = [];

  const compose = async (req: IncomingMessage, res: ServerResponse, bucket: string, destination: string) => {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = JSON.parse(Buffer.concat(chunks).toString('utf8')) as ComposeRequest['body'];
    requests.push({ bucket, destination, body });
    const answer = (status: number, json: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(json));
    };
    if (!Array.isArray(body.sourceObjects) || body.sourceObjects.length < 1 || body.sourceObjects.length > 32) {
      return answer(400, { error: { code: 400, message: 'The number of source components provided must be between 1 and 32.', errors: [{ reason: 'invalid' }] } });
    }
    const parts: Buffer[] = [];
    for (const source of body.sourceObjects) {
      const file = storage.bucket(bucket).file(source.name);
      const [exists] = await file.exists();
      if (!exists) return answer(404, { error: { code: 404, message: `No such object: ${bucket}/${source.name}`, errors: [{ reason: 'notFound' }] } });
      const [metadata] = await file.getMetadata();
      if (source.generation !== undefined && String(metadata.generation) !== String(source.generation)) {
        return answer(412, { error: { code: 412, message: 'At least one of the pre-conditions you specified did not hold.', errors: [{ reason: 'conditionNotMet' }] } });
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

  const proxy = (req: IncomingMessage, res: ServerResponse) => {
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
    compose(req, res, decodeURIComponent(match[1]!), decodeURIComponent(match[2]!)).catch((error: unknown) => {
      res.writeHead(500);
      res.end(String(error));
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as { port: number };
  return {
    endpoint: `http://127.0.0.1:${port}`,
    requests,
    close: () =>
      new Promise<void>((resolve) => {
        server.closeAllConnections();
        server.close(() => resolve());
      }),
  };
}
