/**
 * The one place Swift's answers and network failures become `StoreError`s. Swift says little
 * beyond the status (its error bodies are short HTML or text), so the status and what the
 * request was decide the code; the body's first line is quoted where it helps. Tokens never
 * appear: they travel in a header, and no header is quoted.
 */

import { StoreError } from './object-store.js';
import { NetworkError, TLS_CERTIFICATE_CODES } from './swift-http.js';

export interface SwiftFailure {
  /** The HTTP status, when there was an answer. */
  status?: number;
  body?: string;
  /** The failure below HTTP, when there was none. */
  error?: unknown;
  operation: string;
  key: string;
  /** `swift://container/key`, for messages. */
  where: string;
  endpoint: string;
  credential: string;
  container: string;
  /** The request was on the container itself (a listing), not on an object. */
  onContainer?: boolean;
  /** The request copies from a source, whose absence is the likely 404. */
  copies?: boolean;
  method?: string;
}

export function translateSwiftError(failure: SwiftFailure): StoreError {
  const { status, operation, where } = failure;
  if (status === undefined) return translateNetworkError(failure);
  const said = firstLine(failure.body ?? '');
  const detail = `HTTP ${status}${said ? `: ${said}` : ''}`;
  const storeCode = `HTTP ${status}`;
  switch (status) {
    case 404:
      if (failure.onContainer)
        return new StoreError('NoSuchBucket', `container '${failure.container}' does not exist at ${failure.endpoint}`, storeCode);
      // A PUT (not a copy) of an object only fails with 404 when its container is missing.
      if (failure.method === 'PUT' && !failure.copies)
        return new StoreError('NoSuchBucket', `container '${failure.container}' does not exist at ${failure.endpoint}`, storeCode);
      return new StoreError('NotFound', `${where}: not found`, storeCode);
    case 412:
      return new StoreError('PreconditionFailed', `${where}: changed in the store while open`, storeCode);
    case 401:
      return new StoreError('InvalidCredentials', `${failure.endpoint}: the store refused ${failure.credential} (${detail})`, storeCode);
    case 403:
      return new StoreError('AccessDenied', `${where}: ${operation} denied to ${failure.credential} (${detail})`, storeCode);
    case 416:
      return new StoreError(
        'InvalidRequest',
        `${where}: ${operation} refused: the range starts past the end of the object (${detail})`,
        storeCode,
      );
    case 429:
    case 498:
      return new StoreError('Throttled', `${where}: ${operation} throttled by the store (${detail}) after retries`, storeCode);
  }
  if (status >= 500 || status === 408) return new StoreError('Transient', `${where}: ${operation} failed: ${detail}`, storeCode);
  return new StoreError('InvalidRequest', `${where}: ${operation} refused: ${detail}`, storeCode);
}

function translateNetworkError(failure: SwiftFailure): StoreError {
  const { error, where, endpoint } = failure;
  if (error instanceof StoreError) return error;
  if (error instanceof NetworkError) {
    if (TLS_CERTIFICATE_CODES.test(error.code)) {
      return new StoreError(
        'UntrustedCertificate',
        `the TLS certificate of ${endpoint} cannot be verified (${error.code}) for ${where}: trust its CA with --ca-bundle, or use --insecure`,
        error.code,
      );
    }
    return new StoreError('Unreachable', `cannot reach ${endpoint} (${error.code}) for ${where}`, error.code);
  }
  // Node refuses a header value it cannot send (a character outside Latin-1) before any request.
  const code = (error as { code?: string } | null)?.code;
  const message = error instanceof Error ? firstLine(error.message) : String(error);
  return new StoreError('InvalidRequest', `${where}: ${failure.operation} refused before sending: ${message}`, code);
}

/** Swift's error bodies are short HTML (`<html><h1>Not Found</h1><p>…</p></html>`) or text. */
function firstLine(text: string): string {
  return text
    .replace(/<[^>]+>/g, ' ')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 200);
}
