/**
 * The one place where failures of `@google-cloud/storage` (and of google-auth-library, which it
 * uses to get tokens) become `StoreError`s.
 *
 * The SDK's `ApiError` carries the HTTP status as a number in `code` and GCS's own reasons in
 * `errors[].reason`; network failures carry a Node error code (`ECONNREFUSED`) in `code`.
 * A 404 means "no such object" and "no such bucket" alike: GCS tells them apart only in the
 * message ("The specified bucket does not exist."), and a listing's 404 is always the bucket's.
 * Messages name the bucket, key and credential by description only: never a token or key.
 */

import { StoreError, type StoreErrorCode } from './object-store.js';

export interface GcsErrorContext {
  /** `gs://bucket`. */
  description: string;
  bucket: string;
  /** What was being done: 'get', 'list', 'compose'... */
  operation: string;
  /** The object, or '' for bucket-level requests. */
  key: string;
  /** Where requests go, for "cannot reach" messages: "the GCS endpoint" or the custom URL. */
  endpointDescription: string;
  /** "service account a@b from /path/key.json", "no credentials (anonymous)"... */
  credentialDescription: string;
}

const NETWORK_CODES = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'];
const TRANSIENT_NETWORK_CODES = ['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_PREMATURE_CLOSE'];

/** Operations whose 404 can only mean the bucket: they name no object. */
const BUCKET_OPERATIONS = new Set(['list', 'probe', 'head bucket']);

export function translateGcsError(error: unknown, context: GcsErrorContext): StoreError {
  if (error instanceof StoreError) return error;
  const where = context.key ? `${context.description}/${context.key}` : context.description;
  const { operation } = context;
  const status = httpStatusOf(error);
  const reason = reasonOf(error);
  const message = firstLine(error instanceof Error ? error.message : String(error));
  const make = (code: StoreErrorCode, text: string) =>
    new StoreError(code, text, reason ?? (status ? String(status) : undefined), { cause: error });

  if (status !== undefined) {
    const said = `HTTP ${status}${reason ? ` ${reason}` : ''}`;
    if (status === 404) {
      if (BUCKET_OPERATIONS.has(operation) || /bucket does not exist/i.test(message)) {
        return make('NoSuchBucket', `bucket '${context.bucket}' does not exist at ${context.endpointDescription}`);
      }
      return make('NotFound', `${where}: not found`);
    }
    if (status === 412) return make('PreconditionFailed', `${where}: changed in the store while open`);
    if (status === 401) {
      return make('InvalidCredentials', `${context.description}: the store rejected ${context.credentialDescription}: ${said}`);
    }
    if (status === 403) {
      return make('AccessDenied', `${where}: ${operation} denied to ${context.credentialDescription}: ${said}`);
    }
    if (status === 501)
      return make('InvalidRequest', `${where}: ${operation} refused: ${said}: not supported by ${context.endpointDescription}`);
    if (status === 429 || status === 503) return make('Throttled', `${where}: ${operation} throttled by the store (${said}) after retries`);
    if (status >= 500) return make('Transient', `${where}: ${operation} failed: ${said}: ${message}`);
    // The token endpoint refusing a service-account key answers 400 invalid_grant.
    if (status === 400 && /invalid_grant|invalid_client|unauthorized_client/i.test(`${reason ?? ''} ${message}`)) {
      return make('InvalidCredentials', `${context.description}: Google refused ${context.credentialDescription}: ${message}`);
    }
    if (status >= 400) return make('InvalidRequest', `${where}: ${operation} refused: ${said}: ${message}`);
  }

  const code = (error as { code?: unknown } | null)?.code;
  const codeText = typeof code === 'string' ? code : undefined;
  const tokenHost = tokenEndpointHost(error);
  if (codeText && NETWORK_CODES.includes(codeText) && tokenHost) {
    // Getting a token failed, not the request to the store: say so, or --endpoint gets the blame.
    return new StoreError(
      'Unreachable',
      `cannot reach Google's token endpoint ${tokenHost} (${codeText}) to authenticate ${context.credentialDescription} for ${where}`,
      codeText,
      { cause: error },
    );
  }
  if (codeText && NETWORK_CODES.includes(codeText)) {
    return new StoreError('Unreachable', `cannot reach ${context.endpointDescription} (${codeText}) for ${where}`, codeText, {
      cause: error,
    });
  }
  if (/Could not load the default credentials|Unable to detect a Project Id/i.test(message)) {
    return new StoreError(
      'NoCredentials',
      `${context.description}: no Google credentials found: give --key-file or set GOOGLE_APPLICATION_CREDENTIALS to a service-account JSON key`,
      'NoCredentials',
      { cause: error },
    );
  }
  if ((codeText && TRANSIENT_NETWORK_CODES.includes(codeText)) || /timeout|timed out/i.test(message)) {
    return new StoreError('Transient', `${where}: ${operation} failed: ${message}`, codeText ?? 'Timeout', { cause: error });
  }
  return new StoreError('Transient', `${where}: ${operation} failed: ${message}`, codeText, { cause: error });
}

/** The HTTP status of an SDK `ApiError` (numeric `code`) or of a gaxios error (`response.status`). */
function httpStatusOf(error: unknown): number | undefined {
  const e = error as { code?: unknown; status?: unknown; response?: { status?: unknown; statusCode?: unknown } } | null;
  if (!e || typeof e !== 'object') return undefined;
  for (const value of [e.code, e.status, e.response?.status, e.response?.statusCode]) {
    if (typeof value === 'number' && value >= 100 && value < 600) return value;
    if (typeof value === 'string' && /^[1-5]\d\d$/.test(value)) return Number(value);
  }
  return undefined;
}

/** The host of Google's OAuth token endpoint, when the failed request was the token request. */
function tokenEndpointHost(error: unknown): string | undefined {
  const e = error as { config?: { url?: unknown } } | null;
  // gaxios keeps the URL as a string or a URL object, depending on its version.
  const url = e?.config?.url;
  const candidates = [url === undefined || url === null ? '' : String(url), error instanceof Error ? error.message : ''];
  for (const text of candidates) {
    const match = /https?:\/\/([^/\s]*oauth2[^/\s]*)\/token/.exec(text) ?? /https?:\/\/([^/\s]+)\/token\b/.exec(text);
    if (match) return match[1];
  }
  return undefined;
}

/** GCS's reason (`notFound`, `conditionNotMet`, `rateLimitExceeded`...), or the token endpoint's. */
function reasonOf(error: unknown): string | undefined {
  const e = error as { errors?: Array<{ reason?: unknown }>; response?: { data?: { error?: unknown } } } | null;
  const reason = e?.errors?.[0]?.reason;
  if (typeof reason === 'string' && reason) return reason;
  const tokenError = e?.response?.data?.error;
  return typeof tokenError === 'string' ? tokenError : undefined;
}

/** SDK messages can hold whole HTML error pages: keep the first meaningful line, bounded. */
function firstLine(text: string): string {
  const line =
    text
      .split('\n')
      .map((l) => l.trim())
      .find((l) => l.length > 0) ?? '';
  return line.length > 200 ? `${line.slice(0, 200)}…` : line;
}
