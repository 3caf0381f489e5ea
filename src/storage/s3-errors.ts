/**
 * The one place where failures of the AWS SDK (and of requests sent directly,
 * s3-direct-requests.ts, which the SDK sends again) become `StoreError`s (s3-store.ts): S3's
 * error name decides first, then the HTTP status (a HEAD's answer has no body, so no name); a
 * certificate that does not verify and a network failure get a line saying what to do.
 */

import { S3ServiceException } from '@aws-sdk/client-s3';

import { StoreError } from './object-store.js';

export interface S3ErrorContext {
  /** `s3://bucket`, for messages. */
  description: string;
  bucket: string;
  /** The endpoint, or "the AWS S3 endpoint for region R". */
  endpoint: string;
  /** Which credential was used, never the secret. */
  credentialDescription: string;
}

export function translateS3Error(error: unknown, operation: string, key: string, context: S3ErrorContext): StoreError {
  if (error instanceof StoreError) return error;
  const where = key ? `${context.description}/${key}` : context.description;
  const endpoint = context.endpoint;
  if (error instanceof S3ServiceException) {
    const status = error.$metadata?.httpStatusCode ?? 0;
    const name = error.name;
    const said = status ? `${name} (HTTP ${status})` : name;
    const make = (code: StoreError['code'], message: string) => new StoreError(code, message, name, { cause: error });
    switch (name) {
      case 'NoSuchBucket':
        return make('NoSuchBucket', `bucket '${context.bucket}' does not exist at ${endpoint}`);
      case 'NoSuchKey':
      case 'NoSuchUpload':
        return make('NotFound', `${where}: not found`);
      case 'InvalidAccessKeyId':
      case 'SignatureDoesNotMatch':
      case 'ExpiredToken':
      case 'InvalidToken':
      case 'TokenRefreshRequired':
        return make('InvalidCredentials', `${context.description}: the store rejected ${context.credentialDescription}: ${said}`);
      case 'SlowDown':
        return make('Throttled', `${where}: ${operation} throttled by the store (${said}) after retries`);
      case 'KeyTooLongError':
      case 'EntityTooLarge':
      case 'InvalidArgument':
      case 'InvalidRequest':
      case 'InvalidPart':
      case 'EntityTooSmall':
        return make('InvalidRequest', `${where}: ${operation} refused: ${said}: ${error.message}`);
    }
    if (status === 404) {
      // HEAD responses carry no body, so a missing bucket looks like a missing key here.
      return make(operation === 'head bucket' ? 'NoSuchBucket' : 'NotFound', `${where}: not found`);
    }
    if (status === 412) return make('PreconditionFailed', `${where}: changed in the store while open`);
    if (status === 403) {
      return make('AccessDenied', `${where}: ${operation} denied to ${context.credentialDescription}: ${said}`);
    }
    if (status === 503 || status === 429) return make('Throttled', `${where}: ${operation} throttled (${said})`);
    if (status >= 500) return make('Transient', `${where}: ${operation} failed: ${said}`);
    if (status >= 400) return make('InvalidRequest', `${where}: ${operation} refused: ${said}`);
  }
  const code = (error as { code?: string } | null)?.code;
  const name = (error as { name?: string } | null)?.name;
  if (code && TLS_CERTIFICATE_CODES.test(code)) {
    return new StoreError(
      'UntrustedCertificate',
      `cannot verify the TLS certificate of ${endpoint} (${code}): give its CA with --ca-bundle FILE, or skip the check with --insecure`,
      code,
      { cause: error },
    );
  }
  const networkCodes = ['ECONNREFUSED', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'];
  if ((code && networkCodes.includes(code)) || name === 'TimeoutError') {
    return new StoreError('Unreachable', `cannot reach ${endpoint} (${code ?? name}) for ${where}`, code ?? name, {
      cause: error,
    });
  }
  const detail = error instanceof Error ? error.message : String(error);
  return new StoreError('Transient', `${where}: ${operation} failed: ${detail}`, code ?? name, { cause: error });
}

/** Node's (OpenSSL's) codes for a certificate that does not verify. */
const TLS_CERTIFICATE_CODES = /CERT|SELF_SIGNED|UNABLE_TO_VERIFY|UNABLE_TO_GET_ISSUER|ERR_TLS_CERT_ALTNAME_INVALID/;
