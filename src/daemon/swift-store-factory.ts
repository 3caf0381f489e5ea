/**
 * The Swift part of a mount's composition root: the credential a `swift://` mount uses
 * (creds/swift-credentials.ts) and the `SwiftStore` built with it. One small place, so that it
 * can move into a common store factory as it is.
 */

import { DEFAULTS, type MountOptions } from '../config/mount-options.js';
import { readCaBundle } from '../creds/ca-bundle.js';
import { CredentialError } from '../creds/resolver.js';
import type { SwiftCredentialResolver } from '../creds/swift-credentials.js';
import type { Logger } from '../log/logger.js';
import { describeSwiftCredentials } from '../storage/swift-auth.js';
import { SwiftStore } from '../storage/swift-store.js';
import { UserError } from './user-error.js';

export interface OpenedSwiftStore {
  store: SwiftStore;
  credentialDescription: string;
  endpoint: string | undefined;
  location: string;
  probeHints: Record<string, string>;
}

export async function openSwiftStore(options: MountOptions, logger: Logger, resolver: SwiftCredentialResolver | undefined): Promise<OpenedSwiftStore> {
  const container = options.source.bucket;
  if (!resolver) throw new UserError('swift:// sources are not available here');
  let resolved;
  try {
    resolved = await resolver.resolveSwift(container);
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
  const credentialDescription = `${describeSwiftCredentials(credentials)} (${resolved.description})`;
  const store = new SwiftStore({
    container,
    credentials,
    credentialDescription,
    maxConnections: options.maxConnections,
    // --max-upload-parts defaults to S3's 10,000: left at that, Swift's 1,000 segments apply.
    maxParts: options.maxUploadParts === DEFAULTS.maxUploadParts ? undefined : options.maxUploadParts,
    caCertificates: options.caBundle ? readCaBundle(options.caBundle, '--ca-bundle') : undefined,
    insecure: options.insecure,
    logger,
  });
  if (options.insecure) logger.warn(`TLS certificates of ${credentials.authUrl ?? credentials.storageUrl} are not verified (--insecure)`);
  return {
    store,
    credentialDescription,
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
