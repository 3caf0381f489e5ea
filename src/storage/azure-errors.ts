/**
 * The one place where failures of `@azure/storage-blob` become `StoreError`s (azure-store.ts).
 *
 * Azure's own error code (the x-ms-error-code header, or the body's Code) decides first; HEAD
 * responses carry no body and sometimes no code, so the HTTP status decides then. Azurite says
 * AuthorizationFailure for a wrong key where Azure says AuthenticationFailed. No SDK error is
 * kept as a cause (its request holds the signed URL), and every message goes through `redact`,
 * so a SAS signature or Shared Key signature quoted by the SDK never reaches a log.
 */

import { isRestError } from '@azure/storage-blob';

import { StoreError, type StoreErrorCode } from './object-store.js';

export interface AzureErrorContext {
  /** `az://account/container`. */
  description: string;
  account: string;
  container: string;
  /** The blob service URL, for "cannot reach" messages. */
  endpoint: string;
  /** "account key for ACCOUNT from the environment"... */
  credentialDescription: string;
  /** What was being done: 'get', 'list', 'copy part'... */
  operation: string;
  /** The blob, or '' for account- and container-level requests. */
  key: string;
}

export function translateAzureError(error: unknown, context: AzureErrorContext): StoreError {
  const { operation, key } = context;
  if (error instanceof StoreError) return error;
  const where = key ? `${context.description}/${key}` : context.description;
  const make = (code: StoreErrorCode, message: string, storeCode?: string) => new StoreError(code, redact(message), storeCode);
  if (isRestError(error) && error.statusCode !== undefined) {
    const status = error.statusCode;
    const name = azureErrorCode(error) ?? `HTTP ${status}`;
    const said = `${name} (HTTP ${status})`;
    switch (name) {
      case 'ContainerNotFound':
        return make(
          'NoSuchBucket',
          `container '${context.container}' does not exist in account '${context.account}' at ${context.endpoint}`,
          name,
        );
      case 'BlobNotFound':
        return make('NotFound', `${where}: not found`, name);
      case 'ConditionNotMet':
      case 'TargetConditionNotMet':
      case 'SourceConditionNotMet':
        return make('PreconditionFailed', `${where}: changed in the store while open`, name);
      case 'AuthenticationFailed':
      case 'InvalidAuthenticationInfo':
        return make('InvalidCredentials', `${context.description}: the store rejected ${context.credentialDescription}: ${said}`, name);
      case 'ServerBusy':
        return make('Throttled', `${where}: ${operation} throttled by the store (${said}) after retries`, name);
    }
    // Azurite answers a wrong key with AuthorizationFailure where Azure says AuthenticationFailed;
    // both explain it the same way (HEAD responses have no message, and stay AccessDenied).
    if (name === 'AuthorizationFailure' && /failed to authenticate/i.test(error.message)) {
      return make('InvalidCredentials', `${context.description}: the store rejected ${context.credentialDescription}: ${said}`, name);
    }
    if (name.startsWith('Authorization')) {
      return make('AccessDenied', `${where}: ${operation} denied to ${context.credentialDescription}: ${said}`, name);
    }
    // HEAD responses have no body, and some carry no error code header either.
    if (status === 404) return make('NotFound', `${where}: not found`, name);
    if (status === 412) return make('PreconditionFailed', `${where}: changed in the store while open`, name);
    if (status === 403) return make('AccessDenied', `${where}: ${operation} denied to ${context.credentialDescription}: ${said}`, name);
    if (status === 503 || status === 429) return make('Throttled', `${where}: ${operation} throttled (${said})`, name);
    if (status >= 500) return make('Transient', `${where}: ${operation} failed: ${said}`, name);
    return make('InvalidRequest', `${where}: ${operation} refused: ${said}: ${firstLine(error.message)}`, name);
  }
  const code = (error as { code?: string } | null)?.code;
  const errorName = (error as { name?: string } | null)?.name;
  const networkCodes = ['ECONNREFUSED', 'ECONNRESET', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'ETIMEDOUT'];
  if ((code && networkCodes.includes(code)) || errorName === 'AbortError' || errorName === 'TimeoutError') {
    return make('Unreachable', `cannot reach ${context.endpoint} (${code ?? errorName}) for ${where}`, code ?? errorName);
  }
  const detail = error instanceof Error ? firstLine(error.message) : String(error);
  return make('Transient', `${where}: ${operation} failed: ${detail}`, code ?? errorName);
}

/** Azure's error code: the x-ms-error-code header (HEAD responses) or the body's Code. */
function azureErrorCode(error: { code?: string; details?: unknown }): string | undefined {
  const details = error.details as { errorCode?: string } | undefined;
  const code = details?.errorCode ?? error.code;
  return code && /^[A-Za-z]+$/.test(code) ? code : undefined;
}

/** Removes SAS signatures and Shared Key signatures from text that may quote a URL or header. */
export function redact(text: string): string {
  return text
    .replace(/([?&]sig=)[^&\s"'<]*/gi, '$1REDACTED')
    .replace(/(SharedKey(?:Lite)? [^:\s]+:)[^\s"'<]*/g, '$1REDACTED')
    .replace(/(AccountKey=)[^;\s"']*/gi, '$1REDACTED');
}

function firstLine(text: string): string {
  return text.split('\n')[0]!.trim();
}
