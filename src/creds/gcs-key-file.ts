/**
 * Google service-account JSON keys (what `gcloud iam service-accounts keys create` and the Cloud
 * Console hand out), read and checked before the SDK sees them.
 *
 * google-auth-library accepts a malformed key silently and fails later, on the first request,
 * with a message that names neither the file nor the problem. Checking here turns every such
 * case into one line that names the file and what is wrong with it.
 */

import { createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';

import { CredentialError } from './credential-error.js';

export interface ServiceAccountKey {
  clientEmail: string;
  /** PEM, as the SDK wants it. A secret: never logged, never in a message. */
  privateKey: string;
  projectId?: string;
  /** The key's id (not a secret), for messages. */
  privateKeyId?: string;
  /** Where the key is exchanged for tokens; Google's own unless the file says otherwise. */
  tokenUri?: string;
}

/** Reads and checks a key file; throws `CredentialError` with one line naming the file. */
export async function readServiceAccountKey(path: string): Promise<ServiceAccountKey> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const why =
      code === 'ENOENT'
        ? 'no such file'
        : code === 'EACCES'
          ? 'permission denied'
          : code === 'EISDIR'
            ? 'it is a directory'
            : (error as Error).message;
    throw new CredentialError(`cannot read the GCS key file ${path}: ${why}`);
  }
  return parseServiceAccountKey(text, path);
}

/** Checks the text of a key file; `path` only names it in messages. */
export function parseServiceAccountKey(text: string, path: string): ServiceAccountKey {
  const fail = (what: string): never => {
    throw new CredentialError(`the GCS key file ${path} ${what}`);
  };
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // Only the position: JSON.parse's own message quotes the text around it, which may be the key.
    const at = /position (\d+)/.exec((error as Error).message)?.[1];
    fail(`is not valid JSON${at === undefined ? '' : ` (at character ${at})`}`);
  }
  if (typeof json !== 'object' || json === null || Array.isArray(json)) fail('is not a JSON object: expected a service-account key');
  const key = json as Record<string, unknown>;
  const type = key.type;
  if (type === 'authorized_user') {
    fail(
      "holds a user's gcloud login (type authorized_user), not a service-account key: create one with `gcloud iam service-accounts keys create`",
    );
  }
  if (type === 'external_account')
    fail('holds a workload identity federation configuration (type external_account), not a service-account key');
  if (type !== 'service_account')
    fail(
      `is not a service-account key: its "type" is ${type === undefined ? 'missing' : JSON.stringify(type)}, expected "service_account"`,
    );
  const clientEmail = key.client_email;
  if (typeof clientEmail !== 'string' || !clientEmail.includes('@')) fail('has no "client_email" (the service account\'s e-mail address)');
  const privateKey = key.private_key;
  if (typeof privateKey !== 'string' || privateKey.trim() === '') fail('has no "private_key"');
  if (!(privateKey as string).includes('-----BEGIN')) fail('has a "private_key" that is not a PEM key (no -----BEGIN line)');
  try {
    createPrivateKey(privateKey as string);
  } catch {
    // Never the key itself, nor the parser's words about its bytes.
    fail('has a "private_key" that cannot be read as a PEM private key (truncated, or its line breaks lost?)');
  }
  const projectId = typeof key.project_id === 'string' && key.project_id ? key.project_id : undefined;
  const privateKeyId = typeof key.private_key_id === 'string' && key.private_key_id ? key.private_key_id : undefined;
  const tokenUri = typeof key.token_uri === 'string' && key.token_uri ? key.token_uri : undefined;
  return {
    clientEmail: clientEmail as string,
    privateKey: privateKey as string,
    projectId,
    privateKeyId,
    ...(tokenUri ? { tokenUri } : {}),
  };
}
