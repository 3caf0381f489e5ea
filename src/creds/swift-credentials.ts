/**
 * Which credential a `swift://` mount uses: the stored one named with `--creds` (fstab's
 * `creds=`), else the container's pairing, else the one stored Swift credential (when there is
 * exactly one), else the `OS_*` variables of the environment (an RC file sourced in the shell).
 */

import { type SwiftCredentials, authVersionOf, describeSwiftCredentials } from '../storage/swift-auth.js';
import { CredentialError } from './credential-error.js';
import type { CredentialSource, StoredSwiftCredential } from './store.js';
import { type ImportedSwiftCredential, SwiftFormatError, parseOpenStackEnvironment } from './swift-formats.js';

export interface ResolvedSwiftCredential {
  credentials: SwiftCredentials;
  /** For messages, never holding a secret: "the stored credential 'os' (user 'demo')". */
  description: string;
}

export interface SwiftCredentialResolver {
  resolveSwift(container: string): Promise<ResolvedSwiftCredential>;
}

export class StoredSwiftResolver implements SwiftCredentialResolver {
  constructor(
    private readonly store: CredentialSource,
    /** The environment, read by the composition root. */
    private readonly env: Record<string, string | undefined>,
    /** A credential named on the command line (`--creds`): it wins over pairings. */
    private readonly named?: string,
  ) {}

  async resolveSwift(container: string): Promise<ResolvedSwiftCredential> {
    let contents;
    try {
      contents = await this.store.read();
    } catch (error) {
      throw new CredentialError((error as Error).message, { cause: error });
    }
    const uri = `swift://${container}`;
    const name = this.named ?? contents.pairings[uri];
    if (name !== undefined && !contents.credentials[name])
      throw new CredentialError(`no stored credential named '${name}' (see 'objmount creds list')`);
    const chosen = name === undefined ? undefined : contents.credentials[name];
    if (chosen && chosen.provider !== 'swift')
      throw new CredentialError(`the stored credential '${chosen.name}' is not a Swift credential, so it cannot open ${uri}`);
    const swift = Object.values(contents.credentials).filter((c) => c.provider === 'swift');
    if (!chosen && swift.length > 1) {
      throw new CredentialError(
        `${uri}: several stored Swift credentials (${swift.map((c) => c.name).join(', ')}): choose one with 'objmount creds pair ${uri} NAME' or --creds NAME`,
      );
    }
    const stored = chosen ?? swift[0];
    if (stored?.provider === 'swift') {
      const { name: storedName, origin: _origin, importedAt: _at, provider: _provider, ...credentials } = stored;
      return { credentials, description: `the stored credential '${storedName}'` };
    }
    let fromEnv;
    try {
      fromEnv = parseOpenStackEnvironment(this.env);
    } catch (error) {
      if (error instanceof SwiftFormatError) throw new CredentialError(error.message);
      throw error;
    }
    if (!fromEnv) {
      throw new CredentialError(
        `no credentials found for ${uri}: import an OpenStack RC file or an rclone swift section with 'objmount creds import FILE', or set OS_AUTH_URL, OS_USERNAME, OS_PASSWORD and OS_PROJECT_NAME (source your openrc.sh)`,
      );
    }
    const { provider: _p, suggestedName: _s, ...credentials } = fromEnv;
    return { credentials, description: 'the OS_* variables of the environment' };
  }
}

/** A Swift credential's fields without the credential store's own (name, origin...). */
export function swiftCredentialsOf(
  credential: ImportedSwiftCredential | Omit<StoredSwiftCredential, 'origin' | 'importedAt'>,
): SwiftCredentials {
  const { provider: _p, ...fields } = credential as ImportedSwiftCredential & { name?: string; origin?: string; importedAt?: string };
  const { name: _n, origin: _o, importedAt: _i, suggestedName: _s, ...credentials } = fields;
  return credentials;
}

/** One line on a Swift credential, without its secrets. */
export function describeStoredSwift(credentials: SwiftCredentials): string {
  const project = credentials.tenant ?? credentials.tenantId;
  return `Swift ${describeSwiftCredentials(credentials)}${project ? `, project ${project}` : ''}${credentials.region ? `, region ${credentials.region}` : ''}`;
}

/** The credential without its secrets, for `creds list --json` and `creds show`. */
export function publicSwiftView(credentials: SwiftCredentials) {
  const mask = (value: string | undefined) => (value ? '********' : null);
  return {
    authUrl: credentials.authUrl ?? null,
    authVersion: authVersionOf(credentials),
    user: credentials.user ?? credentials.userId ?? null,
    userDomain: credentials.domain ?? credentials.userDomainId ?? null,
    project: credentials.tenant ?? credentials.tenantId ?? null,
    projectDomain: credentials.tenantDomain ?? credentials.tenantDomainId ?? null,
    region: credentials.region ?? null,
    interface: credentials.endpointType ?? 'public',
    storageUrl: credentials.storageUrl ?? null,
    applicationCredential: credentials.applicationCredentialId ?? credentials.applicationCredentialName ?? null,
    key: mask(credentials.key),
    authToken: mask(credentials.authToken),
    applicationCredentialSecret: mask(credentials.applicationCredentialSecret),
  };
}
