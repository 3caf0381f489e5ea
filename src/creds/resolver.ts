/**
 * Where a mount's credentials come from: the bucket's pairing in the `creds` store (which also
 * says the endpoint, region and addressing), else the AWS default chain (environment variables,
 * the shared ~/.aws files, SSO, process, web identity, container and instance roles).
 */

import { defaultProvider } from '@aws-sdk/credential-provider-node';
import type { AwsCredentialIdentity, AwsCredentialIdentityProvider } from '@smithy/types';

import { clientFor } from './account-client.js';
import { CredentialError } from './credential-error.js';
import type { CredentialSource, StoredS3Credential } from './store.js';

export interface ResolvedS3Credential {
  /** Handed to the SDK; refreshes itself before expiry. */
  provider: AwsCredentialIdentityProvider;
  /** The access key id (not a secret), for messages. */
  accessKeyId: string;
  /** Where the key came from, for messages ("environment", "profile 'dev'"). */
  source: string;
  /** What the stored credential says about its store; the command line still wins. */
  endpoint?: string;
  region?: string;
  pathStyle?: boolean;
  signatureVersion?: 'v2' | 'v4' | 'none';
  caBundle?: string;
  insecure?: boolean;
}

export interface CredentialResolver {
  resolveS3(bucket: string): Promise<ResolvedS3Credential>;
}

/** The AWS SDK's default chain, memoized, with the source named for error messages. */
export class DefaultChainResolver implements CredentialResolver {
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async resolveS3(bucket: string): Promise<ResolvedS3Credential> {
    const provider = memoize(defaultProvider({ profile: this.env.AWS_PROFILE }));
    let identity: AwsCredentialIdentity;
    try {
      identity = await provider();
    } catch (error) {
      throw new CredentialError(
        `no credentials found for s3://${bucket}: set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, ` +
          `or configure a profile in ~/.aws/credentials (AWS_PROFILE selects one)`,
        { cause: error },
      );
    }
    return { provider, accessKeyId: identity.accessKeyId, source: this.describeSource() };
  }

  private describeSource(): string {
    if (this.env.AWS_ACCESS_KEY_ID) return 'the environment (AWS_ACCESS_KEY_ID)';
    return `the AWS profile '${this.env.AWS_PROFILE ?? 'default'}'`;
  }
}

/** Caches an identity until five minutes before it expires. */
function memoize(provider: AwsCredentialIdentityProvider): AwsCredentialIdentityProvider {
  let current: Promise<AwsCredentialIdentity> | undefined;
  return async () => {
    if (current !== undefined) {
      const identity = await current.catch(() => undefined);
      const expiresAt = identity?.expiration?.getTime();
      if (identity && (expiresAt === undefined || expiresAt - Date.now() > 5 * 60_000)) return identity;
    }
    current = provider();
    return current;
  };
}

/** A fixed key, for the demo's embedded server and for tests. */
export class StaticResolver implements CredentialResolver {
  constructor(
    private readonly accessKeyId: string,
    private readonly secretAccessKey: string,
    private readonly source: string,
  ) {}

  async resolveS3(): Promise<ResolvedS3Credential> {
    const identity = { accessKeyId: this.accessKeyId, secretAccessKey: this.secretAccessKey };
    return { provider: async () => identity, accessKeyId: this.accessKeyId, source: this.source };
  }
}

/** The bucket's pairing in the credential store first, then `fallback`. */
export class StoreResolver implements CredentialResolver {
  constructor(
    /** The credential store, or the store loaded once for a whole mount (`LoadedCredentialStore`). */
    private readonly store: CredentialSource,
    private readonly fallback: CredentialResolver,
    /** A credential named on the command line (`--creds`, fstab's `creds=`): it wins over pairings. */
    private readonly named?: string,
  ) {}

  async resolveS3(bucket: string): Promise<ResolvedS3Credential> {
    let contents;
    try {
      contents = await this.store.read();
    } catch (error) {
      throw new CredentialError((error as Error).message, { cause: error });
    }
    if (this.named !== undefined && !contents.credentials[this.named]) {
      throw new CredentialError(`no stored credential named '${this.named}' (see 'objmount creds list')`);
    }
    const name = this.named ?? contents.pairings[`s3://${bucket}`];
    if (name === 'public') {
      // Paired for public access: unsigned requests, no key at all.
      return {
        provider: async () => ({ accessKeyId: '', secretAccessKey: '' }),
        accessKeyId: '(none)',
        source: 'public access (unsigned requests)',
        signatureVersion: 'none',
      };
    }
    const s3Credentials = Object.values(contents.credentials).filter((c): c is StoredS3Credential => c.provider === 's3');
    const paired = name === undefined ? undefined : contents.credentials[name];
    if (paired && paired.provider !== 's3')
      throw new CredentialError(`'${paired.name}' is not an S3 credential: pair s3://${bucket} with an S3 one`);
    const credential = paired ?? (await this.oneThatLists(bucket, s3Credentials));
    if (!credential) return this.fallback.resolveS3(bucket);
    const identity = {
      accessKeyId: credential.accessKeyId,
      secretAccessKey: credential.secretAccessKey,
      sessionToken: credential.sessionToken,
    };
    return {
      provider: async () => identity,
      accessKeyId: credential.accessKeyId,
      source: `the stored credential '${credential.name}'`,
      endpoint: credential.endpoint,
      region: credential.region,
      pathStyle: credential.pathStyle,
      signatureVersion: credential.signatureVersion,
      caBundle: credential.caBundle,
      insecure: credential.insecure,
    };
  }

  /** Without a pairing: the stored credential whose bucket listing shows `bucket`, if exactly one does. */
  private async oneThatLists(bucket: string, credentials: StoredS3Credential[]): Promise<StoredS3Credential | undefined> {
    if (credentials.length === 0) return undefined;
    const seen = await Promise.all(
      credentials.map(async (credential) => {
        const buckets = await clientFor(credential, credential.name)
          .listBuckets()
          .catch(() => 'denied' as const); // unreachable: not this one either
        return buckets !== 'denied' && buckets.includes(bucket) ? credential : undefined;
      }),
    );
    const candidates = seen.filter((credential) => credential !== undefined);
    if (candidates.length > 1) {
      throw new CredentialError(
        `s3://${bucket} is listed by several stored credentials (${candidates.map((c) => c.name).join(', ')}): choose one with 'objmount creds pair s3://${bucket} NAME'`,
      );
    }
    return candidates[0];
  }
}
