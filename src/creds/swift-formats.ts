/**
 * OpenStack Swift credentials as providers hand them out: the `OS_*` variables of an OpenStack
 * RC file (`openrc.sh`, Keystone v2 and v3 forms: `export OS_…=…` lines, quotes, `$VAR`
 * references) or of the environment, the swift client's `ST_AUTH`/`ST_USER`/`ST_KEY`, and
 * rclone's `type = swift` sections. Nothing here touches the network or the store.
 *
 * An RC file downloaded from Horizon does not hold the password: it asks for it
 * (`read -sr OS_PASSWORD_INPUT`) and exports `OS_PASSWORD=$OS_PASSWORD_INPUT`. Such a file
 * parses to a credential that `needsPassword`; the caller takes the password from standard
 * input or `OS_PASSWORD` in its environment, never from the command line.
 */

import type { SwiftCredentials } from '../storage/swift-auth.js';

/** One Swift credential as read from a file or the environment. */
export interface ImportedSwiftCredential extends SwiftCredentials {
  provider: 'swift';
  suggestedName?: string;
}

export class SwiftFormatError extends Error {
  override readonly name = 'SwiftFormatError';
}

/** The RC file asks for the password at run time: it is to be supplied. */
export interface ParsedRcFile {
  credential: ImportedSwiftCredential;
  needsPassword: boolean;
}

/** Whether a file looks like an OpenStack RC file (OS_AUTH_URL among its variables). */
export function isOpenStackRc(text: string): boolean {
  return /^\s*(export\s+)?OS_AUTH_URL\s*=/m.test(text);
}

/** Reads the `OS_*` assignments of an RC file; `where` names it in errors. */
export function parseOpenStackRc(where: string, text: string): ParsedRcFile {
  const values: Record<string, string> = {};
  let prompted = false;
  for (const raw of text.replace(/^\uFEFF/, '').split(/\r?\n/)) {
    const line = raw.trim();
    if (/^read\b.*\bOS_PASSWORD_INPUT\b/.test(line)) prompted = true;
    const match = /^(?:export\s+)?([A-Z_][A-Z0-9_]*)=(.*)$/.exec(line);
    if (!match) continue; // comments, echo, unset, if ... fi
    const [, name, rawValue] = match;
    const value = unquote(rawValue!.replace(/\s+#.*$/, ''), values);
    if (value.usesPasswordInput) {
      prompted = true;
      continue;
    }
    values[name!] = value.text;
  }
  if (!values.OS_AUTH_URL) throw new SwiftFormatError(`${where}: no OS_AUTH_URL: this is not an OpenStack RC file`);
  const credential = fromOpenStackVariables(where, values);
  return { credential, needsPassword: prompted && !values.OS_PASSWORD && !credential.applicationCredentialSecret };
}

/** `"…"`, `'…'` or bare; `$VAR`/`${VAR}` replaced by what the file set before. */
function unquote(text: string, seen: Record<string, string>): { text: string; usesPasswordInput: boolean } {
  const trimmed = text.trim();
  if (/^'.*'$/.test(trimmed)) return { text: trimmed.slice(1, -1), usesPasswordInput: false };
  const inner = /^".*"$/.test(trimmed) ? trimmed.slice(1, -1) : trimmed;
  let usesPasswordInput = false;
  const expanded = inner.replace(/\$\{?([A-Za-z_][A-Za-z0-9_]*)\}?/g, (_, name: string) => {
    if (name === 'OS_PASSWORD_INPUT') usesPasswordInput = true;
    return seen[name] ?? '';
  });
  return { text: expanded.replace(/\\(["$\\])/g, '$1'), usesPasswordInput };
}

/** The credential the `OS_*` (or `ST_*`) variables describe, or undefined when they describe none. */
export function parseOpenStackEnvironment(
  env: Record<string, string | undefined>,
  where = 'the environment',
): ImportedSwiftCredential | undefined {
  if (env.OS_AUTH_URL || (env.OS_AUTH_TOKEN && env.OS_STORAGE_URL)) return fromOpenStackVariables(where, env);
  if (env.ST_AUTH && env.ST_USER && env.ST_KEY) {
    return { provider: 'swift', authVersion: '1', authUrl: env.ST_AUTH, user: env.ST_USER, key: env.ST_KEY };
  }
  return undefined;
}

function fromOpenStackVariables(where: string, v: Record<string, string | undefined>): ImportedSwiftCredential {
  const version = (v.OS_IDENTITY_API_VERSION ?? v.OS_AUTH_VERSION ?? '').replace(/^v/, '');
  const authVersion: SwiftCredentials['authVersion'] = version.startsWith('3')
    ? '3'
    : version.startsWith('2')
      ? '2'
      : version.startsWith('1')
        ? '1'
        : undefined;
  const appCredential = (v.OS_AUTH_TYPE ?? '').toLowerCase().includes('applicationcredential') || !!v.OS_APPLICATION_CREDENTIAL_ID;
  const credential: ImportedSwiftCredential = {
    provider: 'swift',
    ...defined({
      authVersion: v.OS_AUTH_TOKEN && v.OS_STORAGE_URL && !v.OS_AUTH_URL ? ('token' as const) : authVersion,
      authUrl: v.OS_AUTH_URL,
      user: v.OS_USERNAME,
      userId: v.OS_USER_ID,
      key: v.OS_PASSWORD,
      domain: v.OS_USER_DOMAIN_NAME ?? (v.OS_USER_DOMAIN_ID ? undefined : v.OS_DOMAIN_NAME),
      userDomainId: v.OS_USER_DOMAIN_ID,
      tenant: v.OS_PROJECT_NAME ?? v.OS_TENANT_NAME,
      tenantId: v.OS_PROJECT_ID ?? v.OS_TENANT_ID,
      tenantDomain: v.OS_PROJECT_DOMAIN_NAME,
      tenantDomainId: v.OS_PROJECT_DOMAIN_ID,
      region: v.OS_REGION_NAME,
      endpointType: interfaceOf(where, v.OS_INTERFACE ?? v.OS_ENDPOINT_TYPE),
      storageUrl: v.OS_STORAGE_URL,
      authToken: v.OS_AUTH_TOKEN,
      applicationCredentialId: appCredential ? v.OS_APPLICATION_CREDENTIAL_ID : undefined,
      applicationCredentialName: appCredential ? v.OS_APPLICATION_CREDENTIAL_NAME : undefined,
      applicationCredentialSecret: appCredential ? v.OS_APPLICATION_CREDENTIAL_SECRET : undefined,
    }),
  };
  if (appCredential && !credential.applicationCredentialSecret)
    throw new SwiftFormatError(`${where}: an application credential needs OS_APPLICATION_CREDENTIAL_SECRET`);
  return credential;
}

function interfaceOf(where: string, text: string | undefined): SwiftCredentials['endpointType'] {
  if (!text) return undefined;
  const kind = text.toLowerCase().replace(/url$/, '');
  if (kind === 'public' || kind === 'internal' || kind === 'admin') return kind;
  // The value is quoted only when it looks like a word: a misplaced secret must not be shown.
  const shown = /^[A-Za-z]{1,16}$/.test(text) ? ` '${text}'` : '';
  throw new SwiftFormatError(`${where}: the interface${shown} is none of public, internal, admin`);
}

/** An rclone `[name]` section of `type = swift`, read through `get` (its keys, lower-case). */
export function parseRcloneSwift(where: string, name: string, get: (key: string) => string | undefined): ImportedSwiftCredential {
  if ((get('env_auth') ?? '').toLowerCase() === 'true') {
    throw new SwiftFormatError(
      `${where}: [${name}] takes its credentials from the environment (env_auth = true): import them with --from-env instead`,
    );
  }
  const version = get('auth_version');
  const credential: ImportedSwiftCredential = {
    provider: 'swift',
    suggestedName: name,
    ...defined({
      authVersion: version === '1' || version === '2' || version === '3' ? (version as '1' | '2' | '3') : undefined,
      authUrl: get('auth'),
      user: get('user'),
      userId: get('user_id'),
      key: get('key'),
      domain: get('domain'),
      tenant: get('tenant'),
      tenantId: get('tenant_id'),
      tenantDomain: get('tenant_domain'),
      region: get('region'),
      storageUrl: get('storage_url'),
      authToken: get('auth_token'),
      endpointType: interfaceOf(`${where}: [${name}]`, get('endpoint_type')),
      applicationCredentialId: get('application_credential_id'),
      applicationCredentialName: get('application_credential_name'),
      applicationCredentialSecret: get('application_credential_secret'),
    }),
  };
  if (!credential.authUrl && !(credential.authToken && credential.storageUrl)) {
    throw new SwiftFormatError(`${where}: [${name}] has no auth URL ('auth'), nor an auth_token with a storage_url`);
  }
  if (!credential.authUrl) credential.authVersion = 'token';
  return credential;
}

/** The secrets of a Swift credential, which `creds list`/`show` mask. */
export const SWIFT_SECRET_FIELDS = ['key', 'authToken', 'applicationCredentialSecret'] as const;

function defined(fields: Partial<SwiftCredentials>): Partial<SwiftCredentials> {
  return Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined && value !== '')) as Partial<SwiftCredentials>;
}
