/**
 * Which store a mount opens, as the spec the store factory (storage/store-factory.ts) builds it
 * from: the source's provider, bucket and endpoint, and its credential. The command line wins
 * over what the resolved credential says about its store.
 *
 * gs:// credentials, first match wins:
 * 1. a service-account JSON key: `--key-file`, else `GOOGLE_APPLICATION_CREDENTIALS` (the caller
 *    reads the environment), checked here so a bad file fails the mount with one line;
 * 2. none, when `--endpoint` names a custom endpoint: emulators take anonymous requests;
 * 3. otherwise Application Default Credentials (gcloud's login, the metadata server).
 */

import { DEFAULTS, type MountOptions } from '../config/mount-options.js';
import type { AzureCredentialResolver } from '../creds/azure-credentials.js';
import { readCaBundle } from '../creds/ca-bundle.js';
import { CredentialError } from '../creds/credential-error.js';
import type { GcsCredentialResolver, StoredGcsKey } from '../creds/gcs-credentials.js';
import type { SwiftCredentialResolver } from '../creds/swift-credentials.js';
import { readServiceAccountKey } from '../creds/gcs-key-file.js';
import type { CredentialResolver } from '../creds/resolver.js';
import { UserError } from '../errors/user-error.js';
import type { Logger } from '../log/logger.js';
import { defaultAzureEndpoint } from '../storage/azure-store.js';
import type { GcsStoreOptions } from '../storage/gcs-store.js';
import type { StoreSpec } from '../storage/store-factory.js';
import { describeSwiftCredentials } from '../storage/swift-auth.js';

/** Where a mount's credentials come from (daemon/mount.ts's dependencies). */
export interface StoreResolvers {
  resolver: CredentialResolver;
  azureResolver?: AzureCredentialResolver;
  gcsResolver?: GcsCredentialResolver;
  swiftResolver?: SwiftCredentialResolver;
  logger: Logger;
  /** Says a warning to whoever mounted (and the log); default: the log alone. */
  warn?: (message: string) => void;
}

/** A mount's store, to be built by the store factory, and what the mount says about it. */
export interface MountStoreSpec {
  spec: StoreSpec;
  /** Names the credential (never a secret) for messages. */
  credentialDescription: string;
  /** The custom endpoint, if any. */
  endpoint?: string;
  /** Where the store is, for the disk cache's identity: the endpoint, or the AWS region. */
  location: string;
  /** What a failed probe should suggest, by StoreError code (else `describeProbeFailure`). */
  probeHints?: Record<string, string>;
  /** --max-upload-parts as this provider takes it (undefined: the provider's own limit). */
  maxParts?: number;
}

/** The CA certificates to trust and whether to verify at all: the command line, the stored credential, AWS_CA_BUNDLE. */
function tlsOptions(
  options: MountOptions,
  credential: { caBundle?: string; insecure?: boolean; source?: string },
  endpoint: string | undefined,
  logger: Logger,
  warn: (message: string) => void,
): { caCertificates?: string; insecure: boolean } {
  const [caBundle, caFrom] =
    options.caBundle !== undefined
      ? [options.caBundle, '--ca-bundle']
      : credential.caBundle !== undefined
        ? [credential.caBundle, 'the stored credential']
        : [options.environmentCaBundle, 'AWS_CA_BUNDLE'];
  let caCertificates: string | undefined;
  try {
    caCertificates = caBundle ? readCaBundle(caBundle, caFrom) : undefined;
  } catch (error) {
    // A bundle named on purpose must work; one inherited from the environment may be stale.
    if (caFrom !== 'AWS_CA_BUNDLE') throw error;
    logger.warn(`${(error as Error).message}; going on with the system's certificates`);
  }
  const insecure = options.insecure || credential.insecure === true;
  if (insecure) {
    const why = options.insecure
      ? '--insecure'
      : `the stored credential says so (imported with insecure${credential.source ? ` from ${credential.source}` : ''})`;
    warn(`TLS certificates of ${endpoint ?? 'the store'} are not verified (${why}): anyone on the path can pose as the store`);
  }
  return { caCertificates, insecure };
}

/**
 * Where the source's bucket is and which credential opens it (a missing credential is a
 * `UserError`): the command line first, then what the resolved credential says about its store.
 */
export async function storeSpecOf(options: MountOptions, deps: StoreResolvers): Promise<MountStoreSpec> {
  const { source, maxUploadParts } = options;
  try {
    switch (source.provider) {
      case 'az': {
        if (!deps.azureResolver) throw new UserError(`az:// sources are not available here`);
        const account = source.account!;
        const resolved = await deps.azureResolver.resolveAzure(account, source.bucket);
        const endpoint = options.endpoint ?? resolved.endpoint;
        return {
          spec: { provider: 'az', account, container: source.bucket, endpoint, credential: resolved.credential },
          credentialDescription: resolved.description,
          endpoint,
          location: (endpoint ?? defaultAzureEndpoint(account)).replace(/\/+$/, ''),
          // --max-upload-parts defaults to S3's 10,000: left at that, Azure's own 50,000 applies.
          maxParts: maxUploadParts === DEFAULTS.maxUploadParts ? undefined : maxUploadParts,
        };
      }
      case 'gs':
        return await gcsStoreSpec(options, await deps.gcsResolver?.resolveGcs(source.bucket));
      case 'swift':
        return await swiftStoreSpec(options, deps);
      case 's3': {
        const credential = await deps.resolver.resolveS3(source.bucket);
        const endpoint = options.endpoint ?? credential.endpoint;
        const region = options.region ?? credential.region ?? options.defaultRegion;
        const spec: StoreSpec = {
          provider: 's3',
          bucket: source.bucket,
          endpoint,
          region,
          pathStyle: options.pathStyle ?? credential.pathStyle ?? endpoint !== undefined,
          credentials: credential.provider,
          signatureVersion: options.signatureVersion ?? credential.signatureVersion,
          ...tlsOptions(options, credential, endpoint, deps.logger, deps.warn ?? ((message) => deps.logger.warn(message))),
        };
        const credentialDescription = `access key ${credential.accessKeyId} from ${credential.source}`;
        return { spec, credentialDescription, endpoint, location: endpoint ?? region, maxParts: maxUploadParts };
      }
    }
  } catch (error) {
    if (error instanceof CredentialError) throw new UserError(error.message);
    throw error;
  }
}

/** A gs:// source's spec. `stored`: the key the credential store has for the bucket (creds/gcs-credentials.ts); `--key-file` wins over it. */
async function gcsStoreSpec(options: MountOptions, stored?: StoredGcsKey): Promise<MountStoreSpec> {
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
  const keyHint = options.keyFile
    ? 'check the key file (is the key revoked, or the account deleted?)'
    : 'give a service-account key with --key-file';
  return {
    spec: { provider: 'gs', bucket: options.source.bucket, endpoint, auth },
    credentialDescription,
    maxParts: options.maxUploadParts,
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

/** A swift:// source's spec: the container's credential (creds/swift-credentials.ts). */
async function swiftStoreSpec(options: MountOptions, deps: StoreResolvers): Promise<MountStoreSpec> {
  const container = options.source.bucket;
  if (!deps.swiftResolver) throw new UserError('swift:// sources are not available here');
  let resolved: Awaited<ReturnType<SwiftCredentialResolver['resolveSwift']>>;
  try {
    resolved = await deps.swiftResolver.resolveSwift(container);
  } catch (error) {
    if (error instanceof CredentialError) throw new UserError(`cannot mount swift://${container}: ${error.message}`);
    throw error;
  }
  // --endpoint names the storage URL (the account's), as rclone's storage_url does; --region
  // picks the catalog's region.
  const credentials = {
    ...resolved.credentials,
    ...(options.endpoint ? { storageUrl: options.endpoint } : {}),
    ...(options.region ? { region: options.region } : {}),
  };
  if (options.insecure)
    (deps.warn ?? ((m: string) => deps.logger.warn(m)))(
      `TLS certificates of ${credentials.authUrl ?? credentials.storageUrl} are not verified (--insecure)`,
    );
  return {
    spec: {
      provider: 'swift',
      container,
      credentials,
      caCertificates: options.caBundle ? readCaBundle(options.caBundle, '--ca-bundle') : undefined,
      insecure: options.insecure,
    },
    credentialDescription: `${describeSwiftCredentials(credentials)} (${resolved.description})`,
    // --max-upload-parts defaults to S3's 10,000: left at that, Swift's 1,000 segments apply.
    maxParts: options.maxUploadParts === DEFAULTS.maxUploadParts ? undefined : options.maxUploadParts,
    endpoint: credentials.storageUrl ?? credentials.authUrl,
    location: credentials.storageUrl ?? credentials.authUrl ?? 'swift',
    probeHints: {
      NoSuchBucket: 'check the container name (objmount creds verify lists the containers the credential sees)',
      InvalidCredentials: 'check the user, password (or key), project and domains',
      AccessDenied: 'the user may not list this container (its read ACL must name the user)',
      Unreachable: 'check the auth URL and the network',
    },
  };
}
