/**
 * The credentials Azure and Google Cloud hand out, read into the normalised shapes of
 * `formats.ts`: Azure account keys (an `AZURE_STORAGE_ACCOUNT`/`AZURE_STORAGE_KEY` file or the
 * environment), connection strings, account SAS URLs and tokens; Google service-account JSON key
 * files. Nothing here touches the network. Errors name the file and what was expected, and never
 * quote a secret.
 */

import { parseServiceAccountKey as checkServiceAccountKey } from './gcs-key-file.js';
import { CredentialError } from './credential-error.js';

/** An Azure storage account and one way to authenticate to it. */
export interface ImportedAzureCredential {
  provider: 'az';
  suggestedName?: string;
  account: string;
  /** The account key (base64), for Shared Key authorisation. */
  accountKey?: string;
  /** An account SAS token, without the leading '?'. */
  sas?: string;
  /** The Blob service endpoint; omitted for https://ACCOUNT.blob.core.windows.net. */
  endpoint?: string;
}

/** A Google service account's key, from its JSON key file. */
export interface ImportedGcsCredential {
  provider: 'gs';
  suggestedName?: string;
  clientEmail: string;
  privateKey: string;
  projectId?: string;
  tokenUri?: string;
  /** A custom JSON API endpoint (an emulator); omitted for Google's. */
  endpoint?: string;
}

export class CloudCredentialError extends Error {
  override readonly name = 'CloudCredentialError';
}

/** Azurite's and the storage emulator's development account, documented by Microsoft; not a secret. */
export const DEVELOPMENT_ACCOUNT = 'devstoreaccount1';
export const DEVELOPMENT_ACCOUNT_KEY = 'Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==';

/** What `UseDevelopmentStorage=true` (and rclone's use_emulator) stands for. */
const DEVELOPMENT_STORAGE = {
  account: DEVELOPMENT_ACCOUNT,
  accountKey: DEVELOPMENT_ACCOUNT_KEY,
  endpoint: `http://127.0.0.1:10000/${DEVELOPMENT_ACCOUNT}`,
};

/** `Key=value;Key=value` (a connection string), keys case-insensitive. */
function connectionFields(text: string): Map<string, string> {
  const fields = new Map<string, string>();
  for (const part of text.trim().split(';')) {
    if (part.trim() === '') continue;
    const at = part.indexOf('=');
    if (at <= 0) continue;
    fields.set(part.slice(0, at).trim().toLowerCase(), part.slice(at + 1).trim());
  }
  return fields;
}

/** Whether `text` is an Azure Storage connection string. */
export function isConnectionString(text: string): boolean {
  const fields = connectionFields(text);
  return (
    ['accountname', 'accountkey', 'blobendpoint', 'defaultendpointsprotocol', 'sharedaccesssignature'].some((name) => fields.has(name)) ||
    fields.get('usedevelopmentstorage') === 'true'
  );
}

/** An Azure Storage connection string (account key, SAS, custom or development endpoints). */
export function parseConnectionString(where: string, text: string): ImportedAzureCredential {
  const fields = connectionFields(text);
  if (fields.get('usedevelopmentstorage') === 'true') return { provider: 'az', ...DEVELOPMENT_STORAGE };
  const blobEndpoint = fields.get('blobendpoint');
  const account = fields.get('accountname') ?? (blobEndpoint ? accountOfEndpoint(blobEndpoint) : undefined);
  if (!account)
    throw new CloudCredentialError(`${where}: the connection string names no AccountName (or a BlobEndpoint with the account in it)`);
  checkAccount(where, account);
  const accountKey = fields.get('accountkey');
  const sas = fields.get('sharedaccesssignature')?.replace(/^\?/, '');
  if (!accountKey && !sas)
    throw new CloudCredentialError(`${where}: the connection string has neither AccountKey nor SharedAccessSignature`);
  const suffix = fields.get('endpointsuffix');
  const protocol = fields.get('defaultendpointsprotocol') ?? 'https';
  const endpoint = blobEndpoint
    ? blobEndpoint.replace(/\/+$/, '')
    : suffix && suffix !== 'core.windows.net'
      ? `${protocol}://${account}.blob.${suffix}`
      : protocol === 'http'
        ? `http://${account}.blob.core.windows.net`
        : undefined;
  return { provider: 'az', account, ...(accountKey ? { accountKey } : { sas }), ...(endpoint ? { endpoint } : {}) };
}

/** An account SAS URL (`https://ACCOUNT.blob.core.windows.net/?sv=…&sig=…`). */
export function parseSasUrl(where: string, text: string): ImportedAzureCredential {
  let url: URL;
  try {
    url = new URL(text.trim());
  } catch {
    throw new CloudCredentialError(`${where}: expected a SAS URL such as https://ACCOUNT.blob.core.windows.net/?sv=…&sig=…`);
  }
  if (!url.searchParams.has('sig')) throw new CloudCredentialError(`${where}: the URL has no SAS token (no 'sig' parameter)`);
  const account = accountOfEndpoint(url.origin + url.pathname);
  if (!account) throw new CloudCredentialError(`${where}: cannot tell the storage account from the URL's host`);
  checkAccount(where, account);
  const endpoint = isAzureHost(url.hostname) && url.protocol === 'https:' ? undefined : endpointOf(url, account);
  return { provider: 'az', account, sas: url.search.slice(1), ...(endpoint ? { endpoint } : {}) };
}

/** AZURE_STORAGE_* variables (a file of them, or the environment); undefined when none is set. */
export function parseAzureVariables(where: string, values: Record<string, string | undefined>): ImportedAzureCredential | undefined {
  const get = (name: string) => values[name] ?? values[name.toLowerCase()];
  const connection = get('AZURE_STORAGE_CONNECTION_STRING');
  if (connection) return parseConnectionString(where, connection);
  const account = get('AZURE_STORAGE_ACCOUNT');
  const accountKey = get('AZURE_STORAGE_KEY') ?? get('AZURE_STORAGE_ACCESS_KEY');
  const sas = get('AZURE_STORAGE_SAS_TOKEN')?.replace(/^\?/, '');
  if (!account && !accountKey && !sas) return undefined;
  if (!account) throw new CloudCredentialError(`${where}: AZURE_STORAGE_ACCOUNT is missing (it names the storage account)`);
  checkAccount(where, account);
  if (!accountKey && !sas)
    throw new CloudCredentialError(
      `${where}: expected AZURE_STORAGE_KEY (or AZURE_STORAGE_ACCESS_KEY) or AZURE_STORAGE_SAS_TOKEN for account '${account}'`,
    );
  const endpoint = get('AZURE_STORAGE_BLOB_ENDPOINT') ?? get('AZURE_STORAGE_ENDPOINT');
  return {
    provider: 'az',
    account,
    ...(accountKey ? { accountKey } : { sas }),
    ...(endpoint ? { endpoint: endpoint.replace(/\/+$/, '') } : {}),
  };
}

/** An rclone `type = azureblob` remote. */
export function parseRcloneAzure(where: string, name: string, get: (key: string) => string | undefined): ImportedAzureCredential {
  if (get('use_emulator') === 'true') return { provider: 'az', suggestedName: name, ...DEVELOPMENT_STORAGE };
  const sasUrl = get('sas_url');
  if (sasUrl) return { ...parseSasUrl(where, sasUrl), suggestedName: name };
  const connection = get('connection_string');
  if (connection) return { ...parseConnectionString(where, connection), suggestedName: name };
  const account = get('account');
  const accountKey = get('key');
  if (!account || !accountKey)
    throw new CloudCredentialError(`${where}: expected 'account' and 'key' (or sas_url) in the azureblob remote`);
  checkAccount(where, account);
  const endpoint = get('endpoint');
  return { provider: 'az', suggestedName: name, account, accountKey, ...(endpoint ? { endpoint: endpoint.replace(/\/+$/, '') } : {}) };
}

/** Whether `json` is a Google service-account key. */
export function isServiceAccountKey(json: unknown): boolean {
  return typeof json === 'object' && json !== null && (json as Record<string, unknown>).type === 'service_account';
}

/** A Google service-account JSON key file (checked by gcs-key-file.ts, which mounts use too). */
export function parseServiceAccountKey(where: string, text: string): ImportedGcsCredential {
  let key;
  try {
    key = checkServiceAccountKey(text, where);
  } catch (error) {
    if (error instanceof CredentialError) throw new CloudCredentialError(error.message);
    throw error;
  }
  return {
    provider: 'gs',
    clientEmail: key.clientEmail,
    privateKey: key.privateKey,
    ...(key.projectId ? { projectId: key.projectId, suggestedName: key.projectId } : {}),
    ...(key.tokenUri ? { tokenUri: key.tokenUri } : {}),
  };
}

/** Azure's rule for storage account names; a value that breaks it is not quoted (it may be a key). */
function checkAccount(where: string, account: string): string {
  if (!/^[a-z0-9]{3,24}$/.test(account))
    throw new CloudCredentialError(`${where}: the storage account name is not 3 to 24 lowercase letters and digits`);
  return account;
}

function isAzureHost(hostname: string): boolean {
  return /\.blob\.core\.(windows\.net|usgovcloudapi\.net|chinacloudapi\.cn)$/.test(hostname);
}

/** The account of a Blob endpoint: the first label of an Azure host, or Azurite's path segment. */
function accountOfEndpoint(endpoint: string): string | undefined {
  try {
    const url = new URL(endpoint);
    if (/\.blob\./.test(url.hostname)) return url.hostname.split('.')[0];
    const first = url.pathname.split('/').filter(Boolean)[0];
    return first; // http://127.0.0.1:10000/devstoreaccount1
  } catch {
    return undefined;
  }
}

function endpointOf(url: URL, account: string): string {
  return /\.blob\./.test(url.hostname) ? url.origin : `${url.origin}/${account}`;
}
