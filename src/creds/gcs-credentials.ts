/**
 * Which stored service-account key a `gs://` mount uses (`objmount creds`): the one named with
 * `--creds` (fstab's `creds=`), else the bucket's pairing. None is not an error: the mount then
 * takes `--key-file`, `$GOOGLE_APPLICATION_CREDENTIALS` or the Application Default Credentials
 * (see daemon/store-spec.ts), as it does when the pairing names no Google credential
 * (`public`, or an S3 one).
 */

import { CredentialError } from './credential-error.js';
import type { CredentialSource } from './store.js';

/** A service account's key from the credential store, found by the bucket's pairing. */
export interface StoredGcsKey {
  name: string;
  clientEmail: string;
  privateKey: string;
  projectId?: string;
  endpoint?: string;
}

export interface GcsCredentialResolver {
  /** The stored key for `gs://bucket`, or undefined when the store has none for it. */
  resolveGcs(bucket: string): Promise<StoredGcsKey | undefined>;
}

export class StoredGcsResolver implements GcsCredentialResolver {
  constructor(
    /** The credential store, or the store loaded once for a whole mount (`LoadedCredentialStore`). */
    private readonly store: CredentialSource,
    /** A credential named on the command line (`--creds`): it wins over pairings, and must be a Google one. */
    private readonly named?: string,
  ) {}

  async resolveGcs(bucket: string): Promise<StoredGcsKey | undefined> {
    let contents;
    try {
      contents = await this.store.read();
    } catch (error) {
      throw new CredentialError((error as Error).message, { cause: error });
    }
    const name = this.named ?? contents.pairings[`gs://${bucket}`];
    const stored = name === undefined ? undefined : contents.credentials[name];
    if (this.named !== undefined && stored?.provider !== 'gs') {
      throw new CredentialError(`no stored Google Cloud credential named '${this.named}' (see 'objmount creds list')`);
    }
    if (stored?.provider !== 'gs') return undefined;
    const { clientEmail, privateKey, projectId, endpoint } = stored;
    return {
      name: stored.name,
      clientEmail,
      privateKey,
      ...(projectId !== undefined ? { projectId } : {}),
      ...(endpoint !== undefined ? { endpoint } : {}),
    };
  }
}
