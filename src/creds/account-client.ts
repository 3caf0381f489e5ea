/**
 * The store behind a credential, as `objmount creds` asks it: which buckets the credential lists,
 * and whether it opens a given one. Used by the `creds` commands (import, verify, pair) and by the
 * resolver, to find the one stored S3 key whose listing shows an unpaired bucket.
 *
 * `specOf` turns a stored (or just imported) credential into the store factory's `StoreSpec`;
 * the stores themselves are built by storage/store-factory.ts, the one place that builds them.
 */

import { isStoreError } from '../storage/object-store.js';
import { type BuiltStore, type StoreSpec, createStore } from '../storage/store-factory.js';
import { describeSwiftCredentials } from '../storage/swift-auth.js';
import { readCaBundle } from './ca-bundle.js';
import type { ImportedCredential } from './formats.js';
import { type StoredCredential, maskKey } from './store.js';
import { swiftCredentialsOf } from './swift-credentials.js';

export type AnyCredential = ImportedCredential | StoredCredential;

/** What `creds` asks of the store behind a credential, whatever the provider. */
export interface AccountClient {
  /** The buckets (containers) the credential may list, or 'denied' when it may not list them. */
  listBuckets(): Promise<string[] | 'denied'>;
  /** Checks that `bucket` exists and may be used with the credential. */
  probe(bucket: string): Promise<void>;
}

/**
 * Where `bucket` is under `credential` (named `name` in messages), and how to sign for it.
 * `bucket` '' is for account-level calls (Azure's '$root' container: listing is account-wide,
 * but the store still wants a container name).
 */
export function specOf(credential: AnyCredential, bucket: string, name: string): { spec: StoreSpec; credentialDescription: string } {
  switch (credential.provider) {
    case 's3':
      return {
        spec: {
          provider: 's3',
          bucket,
          endpoint: credential.endpoint,
          region: credential.region ?? 'us-east-1',
          pathStyle: credential.pathStyle ?? credential.endpoint !== undefined,
          credentials: async () => ({
            accessKeyId: credential.accessKeyId,
            secretAccessKey: credential.secretAccessKey,
            sessionToken: credential.sessionToken,
          }),
          signatureVersion: credential.signatureVersion,
          caCertificates: credential.caBundle ? readCaBundle(credential.caBundle, `credential '${name}'`) : undefined,
          insecure: credential.insecure,
        },
        credentialDescription: `credential '${name}' (access key ${maskKey(credential.accessKeyId)})`,
      };
    case 'az':
      return {
        spec: {
          provider: 'az',
          account: credential.account,
          container: bucket || '$root',
          endpoint: credential.endpoint,
          credential: credential.accountKey
            ? { kind: 'sharedKey', accountKey: credential.accountKey }
            : { kind: 'sas', token: credential.sas! },
        },
        credentialDescription: `credential '${name}' (Azure account ${credential.account})`,
      };
    case 'gs':
      return {
        spec: {
          provider: 'gs',
          bucket,
          endpoint: credential.endpoint,
          auth: { kind: 'key', clientEmail: credential.clientEmail, privateKey: credential.privateKey, projectId: credential.projectId },
        },
        credentialDescription: `credential '${name}' (service account ${credential.clientEmail})`,
      };
    case 'swift': {
      const credentials = swiftCredentialsOf(credential);
      return {
        spec: { provider: 'swift', container: bucket, credentials },
        credentialDescription: `credential '${name}' (${describeSwiftCredentials(credentials)})`,
      };
    }
  }
}

export function clientFor(credential: AnyCredential, name: string): AccountClient {
  /** Runs `use` on a store for `bucket`, built for a quick answer, and releases it. */
  const withStore = async <T>(bucket: string, use: (store: BuiltStore) => Promise<T>): Promise<T> => {
    const { spec, credentialDescription } = specOf(credential, bucket, name);
    const store = await createStore(spec, { credentialDescription, purpose: 'check' });
    try {
      return await use(store);
    } finally {
      store.destroy();
    }
  };
  return {
    listBuckets: () =>
      withStore('', async (store) => {
        try {
          return await store.listBuckets();
        } catch (error) {
          if (isStoreError(error, 'AccessDenied')) return 'denied' as const; // e.g. an Azure SAS without list permission on the account
          throw error;
        }
      }),
    probe: (bucket) => withStore(bucket, (store) => store.probe('')),
  };
}
