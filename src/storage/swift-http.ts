/**
 * HTTP for the Swift backend, on node:http/https directly.
 *
 * Why not a library: there is no well-kept Swift SDK for Node (the npm packages that exist are
 * unmaintained wrappers around v1 auth), and Swift's API is plain HTTP: a header for the token,
 * JSON listings, query parameters for SLO. Node's own client keeps Buffers end to end (a block
 * read lands in the caller's buffer with no conversion from web streams), and its agent gives
 * kept-alive, bounded sockets as the SDK-based stores have.
 *
 * This file only sends requests and classifies network failures; retries, tokens and Swift's
 * status codes are the store's (swift-store.ts) and the authenticator's (swift-auth.ts).
 */

import { Agent as HttpAgent, type IncomingMessage, request as httpRequest } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest } from 'node:https';
import { rootCertificates } from 'node:tls';

export interface SwiftHttpOptions {
  /** Sockets kept open per host. */
  maxConnections?: number;
  /** A request whose socket is idle this long (connecting included) fails. */
  idleTimeoutMs?: number;
  /** PEM certificates trusted besides Node's own roots. */
  caCertificates?: string;
  /** Skip TLS certificate verification altogether (`--insecure`). */
  insecure?: boolean;
}

export interface HttpRequest {
  method: string;
  url: string;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Silence allowed on the socket for this request, instead of the client's idle timeout. */
  idleTimeoutMs?: number;
  /** Destroys the request (and fails it with the abort's reason): its deadline passed, or it was cancelled. */
  signal?: AbortSignal;
}

/** A failure below HTTP (refused, reset, timed out, TLS): `code` is Node's (ECONNREFUSED...). */
/**
 * A request as the store describes it (swift-store.ts's `call` makes its URL, adds the token and
 * decides on retries): a container and key rather than a URL.
 */
export interface SwiftRequest {
  method: string;
  /** The container (default: the store's). */
  container?: string;
  /** The object; absent for a request on the container, '' for one on the account. */
  key?: string;
  query?: Record<string, string | undefined>;
  headers?: Record<string, string>;
  body?: Buffer;
  /** Statuses handed back instead of thrown (besides 2xx). */
  allow?: number[];
  /** A copy: a 404 is the source's, not the container's. */
  copies?: boolean;
  /** The server works before it answers (a copy, a manifest's check of its segments): silence allowed. */
  slow?: boolean;
  /** Bytes of object data the request moves (a PUT's body): its deadline grows with them (deadline.ts). */
  bytes?: number;
  /** The caller's cancellation (an interrupted file operation). */
  signal?: AbortSignal;
  /** An enclosing deadline's signal (a GET whose body is read within it): it bounds the request instead of its own. */
  within?: AbortSignal;
}

export class NetworkError extends Error {
  override readonly name = 'NetworkError';
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

export const TLS_CERTIFICATE_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID/;

export class SwiftHttp {
  private readonly http: HttpAgent;
  private readonly https: HttpsAgent;
  private readonly idleTimeoutMs: number;

  constructor(options: SwiftHttpOptions = {}) {
    const maxSockets = options.maxConnections ?? 32;
    this.idleTimeoutMs = options.idleTimeoutMs ?? 30_000;
    this.http = new HttpAgent({ keepAlive: true, maxSockets });
    this.https = new HttpsAgent({
      keepAlive: true,
      maxSockets,
      ...(options.caCertificates ? { ca: [...rootCertificates, options.caCertificates] } : {}),
      rejectUnauthorized: !options.insecure,
    });
  }

  /** Sends a request and resolves with the response once its headers are in; the body is the caller's to read. */
  send(request: HttpRequest): Promise<IncomingMessage> {
    return new Promise((resolve, reject) => {
      let url: URL;
      try {
        url = new URL(request.url);
      } catch {
        reject(new NetworkError('ERR_INVALID_URL', `'${request.url}' is not a URL`));
        return;
      }
      const https = url.protocol === 'https:';
      const headers: Record<string, string> = { ...request.headers };
      if (request.body) headers['content-length'] = String(request.body.length);
      else if (request.method === 'PUT' || request.method === 'POST') headers['content-length'] = '0';
      const { signal } = request;
      if (signal?.aborted) {
        reject(signal.reason);
        return;
      }
      const req = (https ? httpsRequest : httpRequest)(url, { method: request.method, headers, agent: https ? this.https : this.http });
      if (signal) {
        const onAbort = () => req.destroy(signal.reason as Error);
        signal.addEventListener('abort', onAbort, { once: true });
        req.once('close', () => signal.removeEventListener('abort', onAbort));
      }
      const idle = request.idleTimeoutMs ?? this.idleTimeoutMs;
      req.setTimeout(idle, () => req.destroy(Object.assign(new Error(`no answer within ${idle / 1000} s`), { code: 'ETIMEDOUT' })));
      req.once('response', (response) => {
        // The idle timeout keeps watching the body: a stalled body fails the read, not the process.
        response.once('error', () => {});
        // A HEAD's answer has no body, but its socket only goes back to the pool once the
        // (empty) stream has been read to its end: unread, it would hold the socket until the
        // idle timeout, and enough of them stall every request behind them.
        if (request.method === 'HEAD') response.resume();
        resolve(response);
      });
      req.once('error', (error: Error & { code?: string }) => {
        if (signal?.aborted) return reject(signal.reason);
        reject(new NetworkError(error.code ?? 'ECONNRESET', error.message));
      });
      req.end(request.body);
    });
  }

  /** Closes idle sockets; requests still running finish. */
  destroy(): void {
    this.http.destroy();
    this.https.destroy();
  }
}

/** The whole body as text (error bodies, JSON answers); bounded, so a huge error page cannot fill memory. */
export async function readText(response: IncomingMessage, limit = 4 * 1024 * 1024): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of response as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > limit) {
      response.destroy();
      throw new NetworkError('EFBIG', `answer longer than ${limit} bytes`);
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks).toString('utf8');
}

/** Discards a body that is not needed, so its socket goes back to the pool. */
export function discard(response: IncomingMessage): void {
  response.resume();
}

export function header(response: IncomingMessage, name: string): string | undefined {
  const value = response.headers[name.toLowerCase()];
  return Array.isArray(value) ? value[0] : value;
}
