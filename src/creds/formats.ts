/**
 * Reads the credential files object-storage providers hand out, into one normalised shape.
 *
 * S3-family formats: plain key/value files, AWS shared credentials/config files (profiles),
 * s3cmd's .s3cfg, rclone config sections of `type = s3`, the MinIO client's config.json,
 * OpenStack's ec2rc.sh and the table `openstack ec2 credentials create` prints, and the
 * environment. Azure and Google Cloud (cloud-formats.ts): connection strings, account keys, SAS
 * URLs, AZURE_STORAGE_* files, service-account JSON keys, and rclone's `azureblob` and `google
 * cloud storage` remotes. Real files have comments, quotes, blank lines, CRLF endings, `export`
 * prefixes and odd spacing; all are accepted. A file that is none of these fails with the file
 * name, the line and what was expected. Nothing here touches the network or the store; a file a
 * credential names (rclone's service_account_file) is read through the `readFile` given.
 */

import {
  CloudCredentialError,
  type ImportedAzureCredential,
  type ImportedGcsCredential,
  isConnectionString,
  isServiceAccountKey,
  parseAzureVariables,
  parseConnectionString,
  parseRcloneAzure,
  parseSasUrl,
  parseServiceAccountKey,
} from './cloud-formats.js';
import {
  type ImportedSwiftCredential,
  SwiftFormatError,
  isOpenStackRc,
  parseOpenStackEnvironment,
  parseOpenStackRc,
  parseRcloneSwift,
} from './swift-formats.js';

export type { ImportedAzureCredential, ImportedGcsCredential } from './cloud-formats.js';
export type { ImportedSwiftCredential } from './swift-formats.js';

export type CredentialFormat =
  | 'keyvalue'
  | 'aws'
  | 's3cfg'
  | 'rclone'
  | 'mc'
  | 'ec2rc'
  | 'openstack-table'
  | 'openrc'
  | 'env'
  | 'azure'
  | 'gcs';

export const FORMATS: CredentialFormat[] = [
  'keyvalue',
  'aws',
  's3cfg',
  'rclone',
  'mc',
  'ec2rc',
  'openstack-table',
  'openrc',
  'env',
  'azure',
  'gcs',
];

/** Reads a file a credential file names (rclone's service_account_file). */
export type ReadFile = (path: string) => string;

const noFiles: ReadFile = (path) => {
  throw new CredentialFormatError(`${path}: cannot be read here; import that file itself`);
};

/** One credential as read from a file, before it is named and stored. */
export type ImportedCredential = ImportedS3Credential | ImportedAzureCredential | ImportedGcsCredential | ImportedSwiftCredential;

/** One S3-compatible key as read from a file. */
export interface ImportedS3Credential {
  provider: 's3';
  /** A name suggested by the file (a profile, an rclone remote, an mc alias), if any. */
  suggestedName?: string;
  accessKeyId: string;
  secretAccessKey: string;
  sessionToken?: string;
  /** Custom endpoint URL; omitted for AWS. */
  endpoint?: string;
  region?: string;
  /** Path-style addressing; undefined: decided from the endpoint. */
  pathStyle?: boolean;
  signatureVersion?: 'v2' | 'v4';
  /** A PEM file of CA certificates to trust for this store's endpoint, besides the system's. */
  caBundle?: string;
  /** Do not verify the endpoint's TLS certificate (a self-signed test gateway). */
  insecure?: boolean;
}

/** A file could not be read as credentials: the message names the file, the line and what was expected. */
export class CredentialFormatError extends Error {
  override readonly name = 'CredentialFormatError';
}

interface Line {
  number: number;
  text: string;
}

/** Lines without comments or blanks, CRLF and BOM tolerated. */
function meaningfulLines(text: string): Line[] {
  return text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((raw, i) => ({ number: i + 1, text: raw.trim() }))
    .filter((line) => line.text !== '' && !line.text.startsWith('#') && !line.text.startsWith(';'));
}

function unquote(value: string): string {
  const trimmed = value.trim();
  if (trimmed.length >= 2 && (trimmed[0] === '"' || trimmed[0] === "'") && trimmed.endsWith(trimmed[0]!)) return trimmed.slice(1, -1);
  // An unquoted value may carry a trailing comment: "key = value  # note".
  return trimmed.replace(/\s+#.*$/, '');
}

/** `key = value` / `key: value` / `export KEY=value` → [lower-case key, value], or undefined. */
function keyValue(text: string): [string, string] | undefined {
  const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_.-]*)\s*[=:]\s*(.*)$/.exec(text);
  return match ? [match[1]!.toLowerCase(), unquote(match[2]!)] : undefined;
}

interface Section {
  name: string;
  line: number;
  values: Map<string, { value: string; line: number }>;
}

/** INI sections; lines before the first section go to a section named ''. */
function iniSections(file: string, text: string): Section[] {
  const sections: Section[] = [{ name: '', line: 0, values: new Map() }];
  for (const line of meaningfulLines(text)) {
    const header = /^\[\s*([^\]]+?)\s*\]$/.exec(line.text);
    if (header) {
      sections.push({ name: header[1]!, line: line.number, values: new Map() });
      continue;
    }
    const pair = keyValue(line.text);
    // The line is not quoted: a key and its secret with the '=' missing would be shown.
    if (!pair) throw new CredentialFormatError(`${file}:${line.number}: expected 'key = value' or '[section]'`);
    sections[sections.length - 1]!.values.set(pair[0], { value: pair[1], line: line.number });
  }
  return sections;
}

function get(section: Section, ...names: string[]): string | undefined {
  for (const name of names) {
    const value = section.values.get(name)?.value;
    if (value !== undefined && value !== '') return value;
  }
  return undefined;
}

function requireKeys(file: string, where: string, id: string | undefined, secret: string | undefined, expected: string): [string, string] {
  if (!id || !secret)
    throw new CredentialFormatError(`${file}: ${where} has no ${!id ? 'access key' : 'secret key'} (expected ${expected})`);
  return [id, secret];
}

function endpointUrl(host: string, https = true): string {
  return /^[a-z]+:\/\//i.test(host) ? host.replace(/\/+$/, '') : `${https ? 'https' : 'http'}://${host.replace(/\/+$/, '')}`;
}

// ---- detection ------------------------------------------------------------------------------

/** Which format `text` is in; throws naming the file when it is none of them. */
export function detectFormat(file: string, text: string): CredentialFormat {
  const trimmed = text.trim();
  if (trimmed.startsWith('{')) {
    try {
      const json = JSON.parse(trimmed) as Record<string, unknown> | null;
      if (json?.aliases || json?.hosts) return 'mc';
      if (isServiceAccountKey(json)) return 'gcs';
    } catch {
      // not JSON after all: a broken service-account key says so in its own words
      if (/"type"\s*:\s*"service_account"/.test(trimmed)) return 'gcs';
    }
    throw new CredentialFormatError(
      `${file}: a JSON file, but neither a MinIO client config.json (expected "aliases") nor a service-account key (expected "type": "service_account")`,
    );
  }
  if (/^https?:\/\/\S+[?&]sig=/i.test(trimmed) || isConnectionString(trimmed) || /^\s*(export\s+)?AZURE_STORAGE_[A-Z_]+\s*=/m.test(text))
    return 'azure';
  if (/^\s*[|+]/m.test(text) && /\|\s*Access\s*\|/i.test(text)) return 'openstack-table';
  if (/^\s*(export\s+)?EC2_ACCESS_KEY\s*=/m.test(text)) return 'ec2rc';
  if (isOpenStackRc(text)) return 'openrc';
  if (/^\s*\[/m.test(text)) {
    if (/^\s*type\s*=\s*s3\b/m.test(text) || /^\s*type\s*=\s*(azureblob|google cloud storage|swift)\b/m.test(text)) return 'rclone';
    if (/^\s*(access_key|host_base)\s*=/m.test(text)) return 's3cfg';
    return 'aws';
  }
  if (/^\s*(access_key|host_base)\s*=/m.test(text)) return 's3cfg';
  return 'keyvalue';
}

/** Reads every credential in `text` (a file named `file`, for messages). */
export function parseCredentials(
  file: string,
  text: string,
  format: CredentialFormat = detectFormat(file, text),
  profile?: string,
  readFile: ReadFile = noFiles,
): ImportedCredential[] {
  try {
    return parseFormat(file, text, format, profile, readFile);
  } catch (error) {
    if (error instanceof CloudCredentialError || error instanceof SwiftFormatError) throw new CredentialFormatError(error.message);
    throw error;
  }
}

function parseFormat(
  file: string,
  text: string,
  format: CredentialFormat,
  profile: string | undefined,
  readFile: ReadFile,
): ImportedCredential[] {
  switch (format) {
    case 'keyvalue':
      return [parseKeyValue(file, text)];
    case 'aws':
      return parseAwsShared(file, text, profile);
    case 's3cfg':
      return [parseS3cfg(file, text)];
    case 'rclone':
      return parseRclone(file, text, profile, readFile);
    case 'mc':
      return parseMinioClient(file, text, profile);
    case 'ec2rc':
      return [parseEc2rc(file, text)];
    case 'openstack-table':
      return parseOpenStackTable(file, text);
    case 'openrc':
      // A file that asks for the password leaves `key` out: the importer supplies it.
      return [parseOpenStackRc(file, text).credential];
    case 'env':
      return parseEnvironment(variablesOf(text), file, readFile);
    case 'azure':
      return [parseAzure(file, text)];
    case 'gcs':
      return [parseServiceAccountKey(file, text)];
  }
}

// ---- the formats ----------------------------------------------------------------------------

/** `aws_access_key_id = …` lines (also AWSAccessKeyId/AWSSecretKey), with endpoint and region. */
function parseKeyValue(file: string, text: string): ImportedS3Credential {
  const [section] = iniSections(file, text);
  const s = section!;
  const [accessKeyId, secretAccessKey] = requireKeys(
    file,
    'the file',
    get(s, 'aws_access_key_id', 'awsaccesskeyid', 'access_key_id', 'access_key', 'accesskey'),
    get(s, 'aws_secret_access_key', 'awssecretkey', 'secret_access_key', 'secret_key', 'secretkey'),
    'aws_access_key_id and aws_secret_access_key',
  );
  // Google Cloud Storage HMAC keys (GOOG…) work through S3's API at storage.googleapis.com.
  const endpoint =
    get(s, 'endpoint', 'endpoint_url', 'aws_endpoint_url', 'aws_endpoint_url_s3', 's3_endpoint', 'url') ??
    (/^GOOG/.test(accessKeyId) ? 'https://storage.googleapis.com' : undefined);
  return {
    provider: 's3',
    accessKeyId,
    secretAccessKey,
    sessionToken: get(s, 'aws_session_token', 'session_token'),
    endpoint: endpoint ? endpointUrl(endpoint) : undefined,
    region: get(s, 'region', 'aws_region', 'aws_default_region'),
  };
}

/** ~/.aws/credentials or ~/.aws/config: every profile with keys, or just `profile`. */
function parseAwsShared(file: string, text: string, profile?: string): ImportedS3Credential[] {
  const sections = iniSections(file, text).filter((s) => s.name !== '');
  const credentials: ImportedS3Credential[] = [];
  for (const section of sections) {
    const name = section.name.replace(/^profile\s+/, '');
    if (profile !== undefined && name !== profile) continue;
    const id = get(section, 'aws_access_key_id');
    const secret = get(section, 'aws_secret_access_key');
    if (!id && !secret) continue; // a config-only profile (sso, role): the default chain's business
    const [accessKeyId, secretAccessKey] = requireKeys(
      file,
      `profile '${name}' (line ${section.line})`,
      id,
      secret,
      'aws_access_key_id and aws_secret_access_key',
    );
    const endpoint = get(section, 'endpoint_url', 's3.endpoint_url');
    credentials.push({
      provider: 's3',
      suggestedName: name,
      accessKeyId,
      secretAccessKey,
      sessionToken: get(section, 'aws_session_token'),
      endpoint: endpoint ? endpointUrl(endpoint) : undefined,
      region: get(section, 'region'),
    });
  }
  if (credentials.length === 0) {
    throw new CredentialFormatError(
      profile !== undefined
        ? `${file}: no profile '${profile}' with aws_access_key_id and aws_secret_access_key`
        : `${file}: no profile has aws_access_key_id and aws_secret_access_key`,
    );
  }
  return credentials;
}

/** s3cmd's .s3cfg ([default] section). */
function parseS3cfg(file: string, text: string): ImportedS3Credential {
  const sections = iniSections(file, text);
  const section = sections.find((s) => s.name === 'default') ?? sections[0]!;
  const [accessKeyId, secretAccessKey] = requireKeys(
    file,
    'the [default] section',
    get(section, 'access_key'),
    get(section, 'secret_key'),
    'access_key and secret_key',
  );
  const hostBase = get(section, 'host_base');
  const https = (get(section, 'use_https') ?? 'True').toLowerCase() !== 'false';
  const hostBucket = get(section, 'host_bucket');
  const awsHost = !hostBase || /(^|\.)amazonaws\.com$/.test(hostBase);
  const location = get(section, 'bucket_location');
  return {
    provider: 's3',
    accessKeyId,
    secretAccessKey,
    sessionToken: get(section, 'access_token'),
    endpoint: awsHost ? undefined : endpointUrl(hostBase, https),
    region: location && location !== 'US' ? location : undefined,
    // host_bucket without %(bucket)s means the store wants path-style requests.
    pathStyle: hostBucket === undefined ? undefined : !hostBucket.includes('%(bucket)s'),
    signatureVersion: (get(section, 'signature_v2') ?? 'False').toLowerCase() === 'true' ? 'v2' : 'v4',
    ...(get(section, 'ca_certs_file') ? { caBundle: get(section, 'ca_certs_file') } : {}),
    ...((get(section, 'check_ssl_certificate') ?? 'True').toLowerCase() === 'false' ? { insecure: true } : {}),
  };
}

/** rclone.conf: every `type = s3` remote, or just `remote`. */
function parseRclone(file: string, text: string, remote: string | undefined, readFile: ReadFile): ImportedCredential[] {
  const credentials: ImportedCredential[] = [];
  for (const section of iniSections(file, text).filter((s) => s.name !== '')) {
    if (remote !== undefined && section.name !== remote) continue;
    const where = `${file}: remote '${section.name}' (line ${section.line})`;
    const type = get(section, 'type');
    if (type === 'azureblob') {
      credentials.push(parseRcloneAzure(where, section.name, (key) => get(section, key)));
      continue;
    }
    if (type === 'swift') {
      credentials.push(parseRcloneSwift(where, section.name, (key) => get(section, key)));
      continue;
    }
    if (type === 'google cloud storage') {
      const inline = get(section, 'service_account_credentials');
      const keyFile = get(section, 'service_account_file');
      if (!inline && !keyFile) continue; // OAuth tokens or anonymous access: not a key we can store
      const key = parseServiceAccountKey(
        keyFile ? `${where}: ${keyFile}` : where,
        inline ?? readFile(keyFile!.replace(/^~(?=\/)/, process.env.HOME ?? '~')),
      );
      const endpoint = get(section, 'endpoint');
      credentials.push({ ...key, suggestedName: section.name, ...(endpoint ? { endpoint: endpointUrl(endpoint) } : {}) });
      continue;
    }
    if (type !== 's3') continue;
    if ((get(section, 'env_auth') ?? 'false') === 'true' && !get(section, 'access_key_id')) continue;
    const [accessKeyId, secretAccessKey] = requireKeys(
      file,
      `remote '${section.name}' (line ${section.line})`,
      get(section, 'access_key_id'),
      get(section, 'secret_access_key'),
      'access_key_id and secret_access_key',
    );
    const endpoint = get(section, 'endpoint');
    credentials.push({
      provider: 's3',
      suggestedName: section.name,
      accessKeyId,
      secretAccessKey,
      sessionToken: get(section, 'session_token'),
      endpoint: endpoint ? endpointUrl(endpoint) : undefined,
      region: get(section, 'region'),
      pathStyle: get(section, 'force_path_style') === undefined ? undefined : get(section, 'force_path_style') === 'true',
      signatureVersion: get(section, 'v2_auth') === 'true' ? 'v2' : 'v4',
    });
  }
  if (credentials.length === 0) {
    throw new CredentialFormatError(
      `${file}: no rclone remote of type s3, azureblob, google cloud storage or swift${remote !== undefined ? ` named '${remote}'` : ''} with keys in it`,
    );
  }
  return credentials;
}

/** The MinIO client's ~/.mc/config.json: every alias with keys, or just `alias`. */
function parseMinioClient(file: string, text: string, alias?: string): ImportedS3Credential[] {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (error) {
    // JSON's own message quotes the text, which may hold a secret: give only the position.
    const at = /position (\d+)/.exec((error as Error).message)?.[1];
    throw new CredentialFormatError(`${file}: not valid JSON${at === undefined ? '' : ` (at character ${at})`}`);
  }
  const isObject = (value: unknown): value is Record<string, unknown> =>
    typeof value === 'object' && value !== null && !Array.isArray(value);
  const aliases = isObject(json) ? (json.aliases ?? json.hosts) : undefined;
  const credentials: ImportedS3Credential[] = [];
  for (const [name, value] of Object.entries(isObject(aliases) ? aliases : {})) {
    if (alias !== undefined && name !== alias) continue;
    if (!isObject(value)) continue;
    const entry = Object.fromEntries(Object.entries(value).filter(([, v]) => typeof v === 'string')) as Record<string, string>;
    if (!entry.accessKey || !entry.secretKey) continue; // mc ships keyless aliases (play, gcs...)
    credentials.push({
      provider: 's3',
      suggestedName: name,
      accessKeyId: entry.accessKey,
      secretAccessKey: entry.secretKey,
      sessionToken: entry.sessionToken || undefined,
      endpoint: entry.url && !/amazonaws\.com/.test(entry.url) ? endpointUrl(entry.url) : undefined,
      pathStyle: entry.path === 'on' ? true : entry.path === 'off' || entry.path === 'dns' ? false : undefined, // 'auto': decided by endpoint
      signatureVersion: /^s3v2$/i.test(entry.api ?? '') ? 'v2' : 'v4',
    });
  }
  if (credentials.length === 0) {
    throw new CredentialFormatError(
      `${file}: no MinIO client alias${alias !== undefined ? ` '${alias}'` : ''} with accessKey and secretKey`,
    );
  }
  return credentials;
}

/** OpenStack's ec2rc.sh / ec2.sh: EC2_ACCESS_KEY, EC2_SECRET_KEY, S3_URL (with or without export). */
function parseEc2rc(file: string, text: string): ImportedS3Credential {
  const values = new Map<string, string>();
  for (const line of meaningfulLines(text)) {
    const pair = keyValue(line.text);
    if (pair) values.set(pair[0], pair[1]);
    else if (!/^(alias|source|\.|echo|if|fi|then|else|unset)\b/.test(line.text)) {
      throw new CredentialFormatError(`${file}:${line.number}: expected 'export NAME=value'`);
    }
  }
  const [accessKeyId, secretAccessKey] = requireKeys(
    file,
    'the file',
    values.get('ec2_access_key'),
    values.get('ec2_secret_key'),
    'EC2_ACCESS_KEY and EC2_SECRET_KEY',
  );
  const s3Url = values.get('s3_url');
  return { provider: 's3', accessKeyId, secretAccessKey, endpoint: s3Url ? endpointUrl(s3Url) : undefined, pathStyle: true };
}

/** The table printed by `openstack ec2 credentials create` / `list` (endpoint given separately). */
function parseOpenStackTable(file: string, text: string): ImportedS3Credential[] {
  const rows = meaningfulLines(text)
    .filter((line) => line.text.startsWith('|'))
    .map((line) => ({
      line,
      cells: line.text
        .split('|')
        .slice(1, -1)
        .map((cell) => cell.trim()),
    }));
  const credentials: ImportedS3Credential[] = [];
  const header = rows[0]?.cells.map((cell) => cell.toLowerCase());
  if (header?.includes('access') && header.includes('secret')) {
    // `list`: one credential per row.
    const access = header.indexOf('access');
    const secret = header.indexOf('secret');
    for (const { cells } of rows.slice(1))
      credentials.push({ provider: 's3', accessKeyId: cells[access]!, secretAccessKey: cells[secret]!, pathStyle: true });
  } else {
    // `create` / `show`: Field | Value rows.
    const field = (name: string) => rows.find(({ cells }) => cells[0]?.toLowerCase() === name)?.cells[1];
    const [accessKeyId, secretAccessKey] = requireKeys(file, 'the table', field('access'), field('secret'), "rows 'access' and 'secret'");
    credentials.push({ provider: 's3', accessKeyId, secretAccessKey, pathStyle: true });
  }
  if (credentials.length === 0) throw new CredentialFormatError(`${file}: the table has no credential rows`);
  return credentials;
}

/** `NAME=value` lines (with or without `export`) as variables. */
function variablesOf(text: string): Record<string, string> {
  return Object.fromEntries(
    meaningfulLines(text).flatMap((line) => {
      const match = /^(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=\s*(.*)$/.exec(line.text);
      return match ? [[match[1]!, unquote(match[2]!)]] : [];
    }),
  );
}

/** An Azure credential file: a connection string, a SAS URL, or AZURE_STORAGE_* lines. */
function parseAzure(file: string, text: string): ImportedAzureCredential {
  const trimmed = text.replace(/^\uFEFF/, '').trim();
  if (/^https?:\/\//i.test(trimmed)) return parseSasUrl(file, trimmed);
  if (isConnectionString(trimmed)) return parseConnectionString(file, trimmed);
  const found = parseAzureVariables(file, variablesOf(text));
  if (!found)
    throw new CredentialFormatError(
      `${file}: expected a connection string, a SAS URL, or AZURE_STORAGE_ACCOUNT and AZURE_STORAGE_KEY lines`,
    );
  return found;
}

/**
 * Every credential the environment holds: AWS_* (with AWS_ENDPOINT_URL[_S3]), AZURE_STORAGE_*,
 * and GOOGLE_APPLICATION_CREDENTIALS (a service-account key file, read through `readFile`).
 */
export function parseEnvironment(
  env: Record<string, string | undefined>,
  where = 'the environment',
  readFile: ReadFile = noFiles,
): ImportedCredential[] {
  const found: ImportedCredential[] = [];
  const lower = Object.fromEntries(Object.entries(env).map(([k, v]) => [k.toLowerCase(), v]));
  if (lower.aws_access_key_id || lower.aws_secret_access_key) {
    const [accessKeyId, secretAccessKey] = requireKeys(
      where,
      'it',
      lower.aws_access_key_id,
      lower.aws_secret_access_key,
      'AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY',
    );
    const endpoint = lower.aws_endpoint_url_s3 || lower.aws_endpoint_url;
    found.push({
      provider: 's3',
      accessKeyId,
      secretAccessKey,
      sessionToken: lower.aws_session_token || undefined,
      endpoint: endpoint ? endpointUrl(endpoint) : undefined,
      region: lower.aws_region || lower.aws_default_region || undefined,
    });
  }
  try {
    const azure = parseAzureVariables(where, env);
    if (azure) found.push(azure);
    const keyFile = env.GOOGLE_APPLICATION_CREDENTIALS;
    if (keyFile) found.push(parseServiceAccountKey(`${keyFile} (GOOGLE_APPLICATION_CREDENTIALS)`, readFile(keyFile)));
    const swift = parseOpenStackEnvironment(env, where);
    if (swift) found.push(swift);
  } catch (error) {
    if (error instanceof CloudCredentialError || error instanceof SwiftFormatError) throw new CredentialFormatError(error.message);
    throw error;
  }
  if (found.length === 0) {
    throw new CredentialFormatError(
      `${where} has no credentials: expected AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY, AZURE_STORAGE_ACCOUNT with AZURE_STORAGE_KEY, GOOGLE_APPLICATION_CREDENTIALS, or OS_AUTH_URL with OS_USERNAME and OS_PASSWORD`,
    );
  }
  return found;
}
