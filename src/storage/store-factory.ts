/**
 * The one place that builds a concrete `ObjectStore`: from where a bucket is and the credential
 * that opens it, whatever the provider. A mount (daemon/mount.ts), the demo (daemon/demo.ts) and
 * `objmount creds` (creds/account-client.ts, which the resolver also uses to see which stored
 * key lists a bucket) all call `createStore`; none of them names a store class.
 *
 * Each provider is one member of `StoreSpec` and one case of the switch in `createStore`: adding
 * one is those few lines. `StoreUse` says what the store is for: a mount retries and waits as a
 * long-running daemon should; a check (a `creds` command, a credential's listing) wants a quick
 * answer, so it tries twice and gives up on a silent endpoint after a few seconds.
 */

import type { AwsCredentialIdentityProvider } from '@smithy/types';

import type { Logger } from '../log/logger.js';
import type { AzureCredential } from './azure-store.js';
import type { StoreDeadlines } from './deadline.js';
import type { GcsStoreOptions } from './gcs-store.js';
import type { ObjectStore, StoreStats } from './object-store.js';
import type { SwiftCredentials } from './swift-auth.js';

/** Where a bucket is and the credential to open it with, per provider. */
export type StoreSpec =
  | {
      provider: 's3';
      bucket: string;
      endpoint?: string;
      region: string;
      pathStyle: boolean;
      credentials: AwsCredentialIdentityProvider;
      signatureVersion?: 'v2' | 'v4' | 'none';
      /** PEM certificates to trust besides the system's. */
      caCertificates?: string;
      insecure?: boolean;
    }
  | { provider: 'az'; account: string; container: string; endpoint?: string; credential: AzureCredential }
  | { provider: 'gs'; bucket: string; endpoint?: string; auth: GcsStoreOptions['auth'] }
  | { provider: 'swift'; container: string; credentials: SwiftCredentials; caCertificates?: string; insecure?: boolean };

export interface StoreUse {
  /** Names the credential in messages (never a secret). */
  credentialDescription: string;
  /** 'mount': a daemon's retries and timeouts; 'check': two attempts and short timeouts. */
  purpose: 'mount' | 'check';
  /** Connections to the store at once (a mount's --max-connections). */
  maxConnections?: number;
  /** --max-upload-parts, where the provider's own limit should not apply. */
  maxParts?: number;
  logger?: Logger;
  /** Overall deadlines of each request (a mount's --request-timeout and --min-transfer-rate). */
  deadlines?: StoreDeadlines;
  /** S3: hashes upload parts and larger PUT bodies for their signature off the JS thread (S3StoreOptions.payloadSha256). */
  payloadSha256?: (body: Buffer) => Promise<string | undefined>;
}

/** A store as its callers use it: the interface, plus its account listing, probe, counts and teardown. */
export interface BuiltStore extends ObjectStore {
  readonly stats: StoreStats;
  /** The buckets (Azure: containers) the credential may list; AccessDenied when it may not list them. */
  listBuckets(): Promise<string[]>;
  /** Checks with one small request that the bucket exists and may be listed under `prefix`. */
  probe(prefix: string): Promise<void>;
  destroy(): void;
}

export async function createStore(spec: StoreSpec, use: StoreUse): Promise<BuiltStore> {
  const check = use.purpose === 'check';
  const { credentialDescription, maxConnections, maxParts, logger, deadlines, payloadSha256 } = use;
  switch (spec.provider) {
    case 's3': {
      const { S3Store } = await import('./s3-store.js');
      const { provider: _, ...location } = spec;
      return new S3Store({
        ...location,
        credentialDescription,
        maxConnections,
        maxParts,
        logger,
        deadlines,
        payloadSha256,
        ...(check ? { maxAttempts: 2, connectTimeoutMs: 3_000 } : {}),
      });
    }
    case 'az': {
      const { AzureStore } = await import('./azure-store.js');
      const { provider: _, ...location } = spec;
      return new AzureStore({
        ...location,
        credentialDescription,
        maxParts,
        logger,
        deadlines,
        ...(check ? { maxAttempts: 2, tryTimeoutMs: 10_000 } : {}),
      });
    }
    case 'gs': {
      const { GcsStore } = await import('./gcs-store.js'); // the GCS SDK is large: loaded only when used
      const { provider: _, ...location } = spec;
      return new GcsStore({
        ...location,
        credentialDescription,
        maxParts,
        deleteConcurrency: maxConnections === undefined ? undefined : Math.min(16, maxConnections),
        logger,
        deadlines,
        ...(check ? { maxRetries: 1, requestTimeoutMs: 15_000 } : {}),
      });
    }
    case 'swift': {
      const { SwiftStore } = await import('./swift-store.js');
      const { provider: _, ...location } = spec;
      return new SwiftStore({
        ...location,
        credentialDescription,
        maxConnections,
        maxParts,
        logger,
        deadlines,
        ...(check ? { maxAttempts: 2, idleTimeoutMs: 15_000 } : {}),
      });
    }
  }
}
