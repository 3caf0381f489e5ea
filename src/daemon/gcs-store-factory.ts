/**
 * The GCS part of a mount's composition root: which credential a `gs://` mount uses, and the
 * `GcsStore` built with it.
 *
 * Credentials, first match wins:
 * 1. a service-account JSON key: `--key-file`, else `GOOGLE_APPLICATION_CREDENTIALS` (the caller
 *    reads the environment), checked here so a bad file fails the mount with one line;
 * 2. none, when `--endpoint` names a custom endpoint: emulators take anonymous requests;
 * 3. otherwise Application Default Credentials (gcloud's login, the metadata server).
 */

import type { MountOptions } from '../config/mount-options.js';
import type { StoredGcsKey } from '../creds/gcs-credentials.js';
import { readServiceAccountKey } from '../creds/gcs-key-file.js';
import { CredentialError } from '../creds/resolver.js';
import type { Logger } from '../log/logger.js';
import { GcsStore, type GcsStoreOptions } from '../storage/gcs-store.js';
import { UserError } from './user-error.js';

export interface OpenedGcsStore {
  store: GcsStore;
  credentialDescription: string;
  endpoint: string | undefined;
  /** Names the store in the disk cache's identity. */
  location: string;
  /** What a failed probe should suggest, by StoreError code. */
  probeHints: Record<string, string>;
}

/** `stored`: the key the credential store has for the bucket (creds/gcs-credentials.ts); `--key-file` wins over it. */
export async function openGcsStore(options: MountOptions, logger: Logger, stored?: StoredGcsKey): Promise<OpenedGcsStore> {
  let auth: GcsStoreOptions['auth'];
  let credentialDescription: string;
  let endpoint = options.endpoint;
  if (!options.keyFile && stored) {
    auth = { kind: 'key', clientEmail: stored.clientEmail, privateKey: stored.privateKey, projectId: stored.projectId };
    credentialDescription = `service account ${stored.clientEmail} of the stored credential '${stored.name}'`;
    endpoint ??= stored.endpoint;
  } else if (options.keyFile) {
    const { path, from } = options.keyFile;
    try {
      const key = await readServiceAccountKey(path);
      auth = { kind: 'key', clientEmail: key.clientEmail, privateKey: key.privateKey, projectId: key.projectId };
      credentialDescription = `service account ${key.clientEmail} from ${path}${from === 'GOOGLE_APPLICATION_CREDENTIALS' ? ' ($GOOGLE_APPLICATION_CREDENTIALS)' : ''}`;
    } catch (error) {
      if (error instanceof CredentialError) throw new UserError(`cannot mount gs://${options.source.bucket}: ${error.message}`);
      throw error;
    }
  } else if (options.endpoint) {
    auth = { kind: 'anonymous' };
    credentialDescription = 'no credentials (anonymous, for an emulator)';
  } else {
    auth = { kind: 'default' };
    credentialDescription = 'the Application Default Credentials';
  }
  const store = new GcsStore({
    bucket: options.source.bucket,
    endpoint,
    auth,
    credentialDescription,
    maxParts: options.maxUploadParts,
    deleteConcurrency: Math.min(16, options.maxConnections),
    logger,
    deadlines: { requestMs: Math.round(options.requestTimeoutSeconds * 1000), minBytesPerSecond: options.minTransferRate },
  });
  const keyHint = options.keyFile ? 'check the key file (is the key revoked, or the account deleted?)' : 'give a service-account key with --key-file';
  return {
    store,
    credentialDescription,
    endpoint,
    location: endpoint ?? 'storage.googleapis.com',
    probeHints: {
      NoSuchBucket: 'check the bucket name',
      InvalidCredentials: keyHint,
      NoCredentials: 'give a service-account key with --key-file or GOOGLE_APPLICATION_CREDENTIALS',
      AccessDenied: 'the account needs storage.objects.list on this bucket (for example the role Storage Object User)',
      Unreachable: 'check --endpoint and the network',
    },
  };
}
