/**
 * The SDK's `S3Client` as `S3Store` uses it: its sockets, timeouts, signature, retries and the
 * middlewares it adds or drops, and the one that notes an answer's Date.
 *
 * CPU per request: a lookup, a random read or a small file's PUT is one small request, and the
 * daemon's one JS thread pays the SDK's per-request work for each (bench/request-cpu.mjs). The
 * client resolves each command's middleware stack once and reuses it (`cacheMiddleware`: no
 * middleware here is added per request), and two middlewares that do nothing for a mount are
 * removed: the logger's (it builds a redacted copy of every input and output for a logger that
 * discards it) and Lambda's trace-header propagation. Even so the SDK costs ~0.6 ms of CPU per
 * HEAD and ~0.65 ms per small PUT, so HEADs, GETs and small PUTs go out directly once the SDK has
 * shown the way (s3-direct-requests.ts): ~0.25 ms.
 *
 * A body's SigV4 signs its SHA-256, which the SDK computes on the JS thread (~8-15 ms per 8 MiB
 * part, while a streamed write waits for it); a body whose hash is in `payloadHashes` (computed
 * off that thread) is sent with it as `x-amz-content-sha256`, which the signer takes as it is.
 */

import { Agent as HttpAgent } from 'node:http';
import { Agent as HttpsAgent } from 'node:https';
import { rootCertificates } from 'node:tls';

import { S3Client } from '@aws-sdk/client-s3';
import { NodeHttpHandler } from '@smithy/node-http-handler';
import type { AwsCredentialIdentityProvider, MiddlewareStack } from '@smithy/types';

import { SignatureV2Signer } from './signature-v2.js';
import { httpDate } from './object-store.js';

export interface S3ClientOptions {
  bucket: string;
  endpoint?: string;
  region: string;
  pathStyle: boolean;
  credentials: AwsCredentialIdentityProvider;
  maxConnections?: number;
  maxAttempts?: number;
  connectTimeoutMs?: number;
  idleTimeoutMs?: number;
  signatureVersion?: 'v2' | 'v4' | 'none';
  caCertificates?: string;
  insecure?: boolean;
}

export interface BuiltS3Client {
  client: S3Client;
  /** The keep-alive agents the client sends with, for requests sent beside it. */
  httpAgent: HttpAgent;
  httpsAgent: HttpsAgent;
  idleTimeoutMs: number;
  /** Whether requests are signed with the SDK's SigV4 signer (not V2, not anonymous). */
  signedWithV4: boolean;
}

/**
 * Builds the client. `payloadHashes`: bodies whose SHA-256 (hex) is already known, set as their
 * request's payload hash (SigV4 only); undefined when none ever is.
 */
export function buildS3Client(options: S3ClientOptions, payloadHashes: WeakMap<Buffer, string> | undefined): BuiltS3Client {
  const maxSockets = options.maxConnections ?? 32;
  // V2 takes the place of the SDK's V4 signer for every auth scheme S3's endpoint rules pick.
  // So does "no signature" for a public bucket, whose requests go out anonymous.
  const signer =
    options.signatureVersion === 'v2'
      ? new SignatureV2Signer(options.bucket)
      : options.signatureVersion === 'none'
        ? { sign: async (request: unknown) => request }
        : undefined;
  const otherSigner = signer
    ? {
        httpAuthSchemes: ['aws.auth#sigv4', 'aws.auth#sigv4a'].map((schemeId) => ({
          schemeId,
          identityProvider: (config: { getIdentityProvider(id: string): unknown }) => config.getIdentityProvider('aws.auth#sigv4'),
          signer,
        })),
      }
    : {};
  const httpAgent = new HttpAgent({ keepAlive: true, maxSockets });
  const httpsAgent = new HttpsAgent({
    keepAlive: true,
    maxSockets,
    // Added to Node's roots, not in their place: AWS itself must stay verifiable.
    ...(options.caCertificates ? { ca: [...rootCertificates, options.caCertificates] } : {}),
    rejectUnauthorized: !options.insecure,
  });
  const idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
  const client = new S3Client({
    ...(otherSigner as object),
    region: options.region,
    endpoint: options.endpoint,
    forcePathStyle: options.pathStyle,
    credentials: options.credentials,
    maxAttempts: options.maxAttempts ?? 4,
    // A bucket in another AWS region than the one configured is found through its redirect.
    followRegionRedirects: true,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
    cacheMiddleware: true,
    requestHandler: new NodeHttpHandler({
      connectionTimeout: options.connectTimeoutMs ?? 5_000,
      requestTimeout: idleTimeoutMs,
      // Without this the SDK only warns and the request (and the file operation) waits forever.
      throwOnRequestTimeout: true,
      httpAgent,
      httpsAgent,
    }),
  });
  client.middlewareStack.remove('loggerMiddleware');
  client.middlewareStack.remove('recursionDetectionMiddleware');
  if (signer === undefined && payloadHashes) {
    client.middlewareStack.add(
      (next) => async (args) => {
        const body = (args.input as { Body?: unknown }).Body;
        const hash = Buffer.isBuffer(body) ? payloadHashes.get(body) : undefined;
        if (hash) (args.request as { headers: Record<string, string> }).headers['x-amz-content-sha256'] = hash;
        return next(args);
      },
      { step: 'build', name: 'objmountPayloadHash' },
    );
  }
  return { client, httpAgent, httpsAgent, idleTimeoutMs, signedWithV4: signer === undefined };
}

/**
 * Notes in `answered.at` the HTTP Date of the answer to `command` (the store's clock, to the
 * second). S3 gives no Last-Modified for a PUT or a completed upload, and the object's is no later
 * than that Date: what `WrittenObject.modifiedBy` needs.
 */
export function noteDate<C extends { middlewareStack: { add: (...args: never[]) => void } }>(command: C, answered: { at?: Date }): C {
  (command.middlewareStack as unknown as MiddlewareStack<object, object>).add(
    (next) => async (args) => {
      const result = await next(args);
      answered.at = httpDate((result.response as { headers?: Record<string, string> }).headers?.date);
      return result;
    },
    { step: 'deserialize', priority: 'low', name: 'objmountNoteDate' },
  );
  return command;
}
