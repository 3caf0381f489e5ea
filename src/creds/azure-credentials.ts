/**
 * Where an Azure mount's credential comes from. Today: the environment variables Azure's own
 * tools read (AZURE_STORAGE_CONNECTION_STRING, AZURE_STORAGE_KEY or AZURE_STORAGE_ACCESS_KEY with
 * AZURE_STORAGE_ACCOUNT, AZURE_STORAGE_SAS_TOKEN). Secrets are never taken from the command line,
 * where other users can read them in the process list.
 *
 * `StoredAzureResolver` looks in the credential store (`objmount creds`) first and falls back to
 * `AzureEnvironmentResolver`.
 */

import type { AzureCredential } from '../storage/azure-store.js';
import { CloudCredentialError, parseConnectionString as parseAzureConnectionString } from './cloud-formats.js';
import { CredentialError } from './credential-error.js';
import type { CredentialSource, StoredAzureCredential } from './store.js';

export { DEVELOPMENT_ACCOUNT, DEVELOPMENT_ACCOUNT_KEY } from './cloud-formats.js';

export interface ResolvedAzureCredential {
  credential: AzureCredential;
  /** The blob endpoint the credential names (a connection string's), if any; `--endpoint` wins. */
  endpoint?: string;
  /** For messages, never holding a secret: "the account key of ACCOUNT from AZURE_STORAGE_KEY". */
  description: string;
}

export interface AzureCredentialResolver {
  resolveAzure(account: string, container: string): Promise<ResolvedAzureCredential>;
}

export class AzureEnvironmentResolver implements AzureCredentialResolver {
  constructor(private readonly env: NodeJS.ProcessEnv) {}

  async resolveAzure(account: string, container: string): Promise<ResolvedAzureCredential> {
    const env = this.env;
    if (env.AZURE_STORAGE_CONNECTION_STRING) {
      const parsed = parseConnectionString(env.AZURE_STORAGE_CONNECTION_STRING);
      if (parsed.account && parsed.account !== account) {
        throw new CredentialError(
          `AZURE_STORAGE_CONNECTION_STRING is for account '${parsed.account}', not '${account}' of az://${account}/${container}`,
        );
      }
      const what = parsed.credential.kind === 'sas' ? 'the SAS' : parsed.credential.kind === 'sharedKey' ? 'the account key' : 'no key';
      return { ...parsed, description: `${what} in AZURE_STORAGE_CONNECTION_STRING` };
    }
    const named = env.AZURE_STORAGE_ACCOUNT;
    if (named && named !== account && (env.AZURE_STORAGE_KEY || env.AZURE_STORAGE_ACCESS_KEY || env.AZURE_STORAGE_SAS_TOKEN)) {
      throw new CredentialError(
        `AZURE_STORAGE_ACCOUNT is '${named}', but the source names account '${account}': the key in the environment is for another account`,
      );
    }
    const keyVariable = env.AZURE_STORAGE_KEY ? 'AZURE_STORAGE_KEY' : env.AZURE_STORAGE_ACCESS_KEY ? 'AZURE_STORAGE_ACCESS_KEY' : undefined;
    if (keyVariable) {
      return {
        credential: { kind: 'sharedKey', accountKey: env[keyVariable]!.trim() },
        description: `the account key of ${account} from ${keyVariable}`,
      };
    }
    if (env.AZURE_STORAGE_SAS_TOKEN) {
      return {
        credential: { kind: 'sas', token: env.AZURE_STORAGE_SAS_TOKEN.trim().replace(/^\?/, '') },
        description: 'the SAS token from AZURE_STORAGE_SAS_TOKEN',
      };
    }
    throw new CredentialError(
      `no credentials found for az://${account}/${container}: set AZURE_STORAGE_KEY (the account key), ` +
        `AZURE_STORAGE_SAS_TOKEN (an account or container SAS) or AZURE_STORAGE_CONNECTION_STRING`,
    );
  }
}

/** The parts of a storage connection string that objmount uses (parsed by cloud-formats.ts). */
export function parseConnectionString(text: string): { account?: string; endpoint?: string; credential: AzureCredential } {
  let parsed;
  try {
    parsed = parseAzureConnectionString('AZURE_STORAGE_CONNECTION_STRING', text);
  } catch (error) {
    if (error instanceof CloudCredentialError) throw new CredentialError(error.message);
    throw error;
  }
  const credential: AzureCredential = parsed.accountKey
    ? { kind: 'sharedKey', accountKey: parsed.accountKey }
    : { kind: 'sas', token: parsed.sas! };
  return { account: parsed.account, endpoint: parsed.endpoint, credential };
}

/**
 * Stored credentials first (`objmount creds`): the container's pairing, else the one stored
 * credential of that account; then the fallback (the environment).
 */
export class StoredAzureResolver implements AzureCredentialResolver {
  constructor(
    /** The credential store, or the store loaded once for a whole mount (`LoadedCredentialStore`). */
    private readonly store: CredentialSource,
    private readonly fallback: AzureCredentialResolver,
    /** A credential named on the command line (`--creds`): it wins over pairings. */
    private readonly named?: string,
  ) {}

  async resolveAzure(account: string, container: string): Promise<ResolvedAzureCredential> {
    let contents;
    try {
      contents = await this.store.read();
    } catch (error) {
      throw new CredentialError((error as Error).message, { cause: error });
    }
    const uri = `az://${account}/${container}`;
    const name = this.named ?? contents.pairings[uri];
    if (name !== undefined && !contents.credentials[name])
      throw new CredentialError(`no stored credential named '${name}' (see 'objmount creds list')`);
    const paired = name === undefined ? undefined : contents.credentials[name];
    if (paired && (paired.provider !== 'az' || paired.account !== account)) {
      throw new CredentialError(`the stored credential '${paired.name}' is not for the Azure account '${account}' of ${uri}`);
    }
    const forAccount = Object.values(contents.credentials).filter(
      (c): c is StoredAzureCredential => c.provider === 'az' && c.account === account,
    );
    if (!paired && forAccount.length > 1) {
      throw new CredentialError(
        `${uri}: several stored credentials are for account '${account}' (${forAccount.map((c) => c.name).join(', ')}): choose one with 'objmount creds pair ${uri} NAME'`,
      );
    }
    const credential = (paired as StoredAzureCredential | undefined) ?? forAccount[0];
    if (!credential) return this.fallback.resolveAzure(account, container);
    return {
      credential: credential.accountKey
        ? { kind: 'sharedKey', accountKey: credential.accountKey }
        : { kind: 'sas', token: credential.sas! },
      endpoint: credential.endpoint,
      description: `the ${credential.accountKey ? 'account key' : 'SAS'} of the stored credential '${credential.name}'`,
    };
  }
}
