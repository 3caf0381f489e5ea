/**
 * `objmount creds …`: import, list, show, verify, pair, unpair and remove credentials for S3 and
 * S3-compatible stores, Azure Blob Storage and Google Cloud Storage. Every command prints what it did in a line or two (or JSON with `--json`), never
 * a secret, and fails with one line naming what to fix. A failed command changes nothing.
 */

import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { resolve as resolvePath } from 'node:path';

import { UserError } from '../errors/user-error.js';
import { isStoreError } from '../storage/object-store.js';
import { createStore } from '../storage/store-factory.js';
import { type AnyCredential, clientFor } from './account-client.js';
import { type CredentialFormat, CredentialFormatError, type ImportedCredential, parseCredentials, parseEnvironment } from './formats.js';
import {
  type CredentialStore,
  type StoredAzureCredential,
  type StoredCredential,
  type StoredGcsCredential,
  type StoredS3Credential,
  type StoredSwiftCredential,
  maskKey,
} from './store.js';
import { describeStoredSwift, publicSwiftView } from './swift-credentials.js';

export interface CredsContext {
  store: CredentialStore;
  env: NodeJS.ProcessEnv;
  print(line: string): void;
  /** Reads standard input (for `import -`). */
  readStdin(): Promise<string>;
}

export interface ImportOptions {
  file?: string;
  fromEnv?: boolean;
  name?: string;
  format?: CredentialFormat;
  profile?: string;
  endpoint?: string;
  region?: string;
  /** Overrides what the file says (s3cmd's signature_v2). */
  signatureVersion?: 'v2' | 'v4';
  /** Override what the file says (s3cmd's ca_certs_file, check_ssl_certificate). */
  caBundle?: string;
  insecure?: boolean;
  force?: boolean;
}

/** The pairing key of `bucket` (a container, for Azure) under a credential. */
function uriOf(credential: AnyCredential, bucket: string): string {
  return credential.provider === 'az' ? `az://${credential.account}/${bucket}` : `${credential.provider}://${bucket}`;
}

/** The bucket of a pairing key, or undefined when it is not the credential's provider (or account). */
function bucketOfUri(credential: AnyCredential, uri: string): string | undefined {
  const prefix = credential.provider === 'az' ? `az://${credential.account}/` : `${credential.provider}://`;
  return uri.startsWith(prefix) ? uri.slice(prefix.length) : undefined;
}

/** What a credential's listing says: its buckets, or that it may not list (a restricted key). */
async function detectBuckets(credential: AnyCredential, name: string): Promise<{ buckets: string[] } | { denied: true }> {
  try {
    const buckets = await clientFor(credential, name).listBuckets();
    return buckets === 'denied' ? { denied: true } : { buckets };
  } catch (error) {
    if (isStoreError(error)) throw new UserError(`cannot import ${name}: ${error.message}`);
    throw error;
  }
}

export async function importCredentials(ctx: CredsContext, options: ImportOptions): Promise<void> {
  let found: ImportedCredential[];
  let origin: string;
  try {
    if (options.fromEnv) {
      origin = 'the environment';
      found = parseEnvironment(ctx.env, 'the environment', readKeyFile);
    } else {
      const file = options.file ?? '-';
      origin = file === '-' ? 'standard input' : file;
      const text =
        file === '-'
          ? await ctx.readStdin()
          : await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
              throw new UserError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
            });
      found = parseCredentials(origin, text, options.format, options.profile, readKeyFile);
    }
  } catch (error) {
    if (error instanceof CredentialFormatError) throw new UserError(error.message);
    throw error;
  }
  found = await withSwiftPasswords(ctx, found, options.file ?? '-');
  if (options.name !== undefined && found.length > 1) {
    throw new UserError(`${origin} holds ${found.length} credentials: --name names one; use --profile to pick it`);
  }
  const existing = (await ctx.store.read()).credentials;
  const named = found.map((credential): StoredWithoutOrigin => {
    const name = options.name ?? credential.suggestedName ?? defaultName(credential, options.endpoint);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name))
      throw new UserError(`'${name}' is not a usable name: use letters, digits, '.', '_' and '-' (--name)`);
    if (existing[name] && !options.force)
      throw new UserError(`a credential named '${name}' exists: choose another with --name, or replace it with --force`);
    if (credential.provider === 'swift') {
      const { suggestedName: _suggested, ...rest } = credential;
      // --endpoint is the storage URL (rclone's storage_url), --region the catalog's region.
      return {
        ...rest,
        ...(options.endpoint ? { storageUrl: options.endpoint } : {}),
        ...(options.region ? { region: options.region } : {}),
        name,
      };
    }
    if (credential.provider !== 's3') {
      const { suggestedName: _suggested, ...rest } = credential;
      const endpoint = options.endpoint ?? credential.endpoint;
      return { ...rest, ...(endpoint ? { endpoint } : {}), name };
    }
    const { suggestedName: _suggested, ...rest } = credential;
    const signatureVersion = options.signatureVersion ?? credential.signatureVersion;
    const caBundle = options.caBundle !== undefined ? resolvePath(options.caBundle) : credential.caBundle;
    const insecure = options.insecure || credential.insecure;
    return {
      ...rest,
      endpoint: options.endpoint ?? credential.endpoint,
      region: options.region ?? credential.region,
      ...(signatureVersion ? { signatureVersion } : {}),
      ...(caBundle ? { caBundle } : {}),
      ...(insecure ? { insecure } : {}),
      name,
    };
  });

  // Verify each one against its store before anything is written.
  const detected: Array<{ credential: (typeof named)[number]; result: Awaited<ReturnType<typeof detectBuckets>> }> = [];
  for (const credential of named) detected.push({ credential, result: await detectBuckets(credential, credential.name) });

  await ctx.store.update((contents) => {
    for (const { credential, result } of detected) {
      contents.credentials[credential.name] = { ...credential, origin, importedAt: new Date().toISOString() };
      if ('buckets' in result) {
        for (const bucket of result.buckets) contents.pairings[uriOf(credential, bucket)] ??= credential.name;
      }
    }
  });
  for (const { credential, result } of detected) {
    const head = `Imported '${credential.name}' (${describe(credential)})`;
    if ('denied' in result) {
      ctx.print(
        `${head}. It may not list buckets: pair each bucket with 'objmount creds pair ${uriOf(credential, 'BUCKET')} ${credential.name}'`,
      );
    } else {
      const buckets = result.buckets;
      ctx.print(
        `${head}. Detected ${buckets.length} bucket${buckets.length === 1 ? '' : 's'}, paired ${buckets.length}${buckets.length ? `: ${buckets.join(', ')}` : ''}`,
      );
    }
  }
}

type StoredWithoutOrigin =
  | Omit<StoredS3Credential, 'origin' | 'importedAt'>
  | Omit<StoredAzureCredential, 'origin' | 'importedAt'>
  | Omit<StoredGcsCredential, 'origin' | 'importedAt'>
  | Omit<StoredSwiftCredential, 'origin' | 'importedAt'>;

/**
 * An OpenStack RC file from Horizon asks for the password (`read -sr OS_PASSWORD_INPUT`) instead
 * of holding it: it comes from OS_PASSWORD in the environment, else the first line of standard
 * input (`objmount creds import openrc.sh < password-file`), never from the command line.
 */
async function withSwiftPasswords(ctx: CredsContext, found: ImportedCredential[], file: string): Promise<ImportedCredential[]> {
  const lacking = (c: ImportedCredential) =>
    c.provider === 'swift' && c.key === undefined && !c.applicationCredentialSecret && !c.authToken;
  if (!found.some(lacking)) return found;
  let password = ctx.env.OS_PASSWORD;
  if (!password && file !== '-') password = (await ctx.readStdin()).split(/\r?\n/)[0];
  if (!password) {
    throw new UserError(
      `${file} asks for the password (OS_PASSWORD_INPUT): give it on standard input ('objmount creds import ${file} < file') or in OS_PASSWORD`,
    );
  }
  return found.map((c) => (lacking(c) ? { ...c, key: password } : c));
}

/** Reads a key file a credential file names (rclone's service_account_file). */
function readKeyFile(path: string): string {
  try {
    return readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new CredentialFormatError(`cannot read ${path}: ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
}

function defaultName(credential: ImportedCredential, endpointOption: string | undefined): string {
  if (credential.provider === 'az') return credential.account;
  if (credential.provider === 'gs') return credential.clientEmail.split('@')[0]!.replace(/[^A-Za-z0-9._-]/g, '-');
  const endpoint =
    credential.provider === 'swift' ? (credential.authUrl ?? credential.storageUrl) : (endpointOption ?? credential.endpoint);
  if (credential.provider === 'swift') {
    const host = endpoint ? URL.parse(endpoint)?.hostname : undefined;
    return `${credential.tenant ?? credential.user ?? 'swift'}${host ? `-${host}` : ''}`.replace(/[^A-Za-z0-9._-]/g, '-');
  }
  if (!endpoint) return 'aws';
  try {
    return new URL(endpoint).hostname.replace(/[^A-Za-z0-9._-]/g, '-');
  } catch {
    return 's3';
  }
}

/** One line on what a credential is, without its secret. */
function describe(credential: AnyCredential): string {
  switch (credential.provider) {
    case 's3':
      return `access key ${maskKey(credential.accessKeyId)} at ${credential.endpoint ?? 'AWS'}`;
    case 'az':
      return `Azure account ${credential.account} with ${credential.accountKey ? 'its account key' : 'a SAS'}${credential.endpoint ? ` at ${credential.endpoint}` : ''}`;
    case 'gs':
      return `service account ${credential.clientEmail}${credential.endpoint ? ` at ${credential.endpoint}` : ''}`;
    case 'swift':
      return describeStoredSwift(credential);
  }
}

/** The credential without its secrets, for `list`, `show` and `--json`. */
function publicView(credential: StoredCredential, pairings: Record<string, string>) {
  const common = {
    name: credential.name,
    provider: credential.provider,
    endpoint: (credential.provider === 'swift' ? credential.storageUrl : credential.endpoint) ?? null,
    origin: credential.origin,
    importedAt: credential.importedAt,
    buckets: Object.entries(pairings)
      .filter(([, name]) => name === credential.name)
      .map(([uri]) => uri),
  };
  switch (credential.provider) {
    case 's3':
      return {
        ...common,
        region: credential.region ?? null,
        pathStyle: credential.pathStyle ?? credential.endpoint !== undefined,
        signatureVersion: credential.signatureVersion ?? 'v4',
        accessKey: maskKey(credential.accessKeyId),
        secret: '********',
        sessionToken: credential.sessionToken ? '********' : null,
        caBundle: credential.caBundle ?? null,
        insecure: credential.insecure === true,
      };
    case 'az':
      return { ...common, account: credential.account, auth: credential.accountKey ? 'account key' : 'SAS', secret: '********' };
    case 'gs':
      return { ...common, clientEmail: credential.clientEmail, projectId: credential.projectId ?? null, privateKey: '********' };
    case 'swift':
      return { ...common, ...publicSwiftView(credential) };
  }
}

export async function listCredentials(ctx: CredsContext, json: boolean): Promise<void> {
  const contents = await ctx.store.read();
  const views = Object.values(contents.credentials).map((credential) => publicView(credential, contents.pairings));
  if (json) {
    ctx.print(JSON.stringify({ credentials: views, pairings: contents.pairings }, null, 2));
    return;
  }
  if (views.length === 0 && Object.keys(contents.pairings).length === 0) {
    ctx.print(`no credentials in ${ctx.store.file}: add some with 'objmount creds import FILE'`);
    return;
  }
  for (const credential of Object.values(contents.credentials)) {
    const buckets = Object.values(contents.pairings).filter((name) => name === credential.name).length;
    ctx.print(`${credential.name}  ${credential.provider}  ${describe(credential)}  ${buckets} bucket(s)`);
  }
  for (const [uri, name] of Object.entries(contents.pairings).sort()) ctx.print(`${uri} -> ${name}`);
}

export async function showCredential(ctx: CredsContext, name: string, json: boolean): Promise<void> {
  const contents = await ctx.store.read();
  const credential = contents.credentials[name];
  if (!credential) throw new UserError(`no credential named '${name}' (see 'objmount creds list')`);
  const view = publicView(credential, contents.pairings);
  if (json) {
    ctx.print(JSON.stringify(view, null, 2));
    return;
  }
  for (const [key, value] of Object.entries(view)) ctx.print(`${key}: ${Array.isArray(value) ? value.join(', ') || '-' : (value ?? '-')}`);
}

export async function verifyCredentials(ctx: CredsContext, name: string | undefined): Promise<void> {
  const contents = await ctx.store.read();
  const credentials = name === undefined ? Object.values(contents.credentials) : [contents.credentials[name]];
  if (credentials[0] === undefined) throw new UserError(name === undefined ? 'no credentials to verify' : `no credential named '${name}'`);
  let failures = 0;
  for (const credential of credentials as StoredCredential[]) {
    const paired = Object.entries(contents.pairings)
      .filter(([, n]) => n === credential.name)
      .flatMap(([uri]) => bucketOfUri(credential, uri) ?? []);
    try {
      const result = await detectBuckets(credential, credential.name);
      const listing = 'denied' in result ? 'may not list buckets' : `lists ${result.buckets.length} bucket(s)`;
      const reachable = [];
      for (const bucket of paired) {
        try {
          await clientFor(credential, credential.name).probe(bucket);
          reachable.push(`${bucket} ok`);
        } catch (error) {
          failures += 1;
          reachable.push(`${bucket}: ${isStoreError(error) ? error.code : 'failed'}`);
        }
      }
      ctx.print(`${credential.name}: authenticates, ${listing}${reachable.length ? `; ${reachable.join('; ')}` : ''}`);
    } catch (error) {
      failures += 1;
      ctx.print(`${credential.name}: ${error instanceof Error ? error.message : String(error)}`);
    }
  }
  if (failures > 0) throw new UserError(`${failures} check(s) failed`);
}

/** Lists the buckets a stored credential can see and pairs those not paired yet. */
export async function detectAndPair(ctx: CredsContext, name: string | undefined): Promise<void> {
  const contents = await ctx.store.read();
  const credentials = name === undefined ? Object.values(contents.credentials) : [contents.credentials[name]];
  if (credentials[0] === undefined) throw new UserError(name === undefined ? 'no credentials stored' : `no credential named '${name}'`);
  for (const credential of credentials as StoredCredential[]) {
    const result = await detectBuckets(credential, credential.name);
    if ('denied' in result) {
      ctx.print(
        `${credential.name}: may not list buckets; pair them with 'objmount creds pair ${uriOf(credential, 'BUCKET')} ${credential.name}'`,
      );
      continue;
    }
    const added = await ctx.store.update((latest) => {
      const fresh = result.buckets.filter((bucket) => latest.pairings[uriOf(credential, bucket)] === undefined);
      for (const bucket of fresh) latest.pairings[uriOf(credential, bucket)] = credential.name;
      return fresh;
    });
    ctx.print(
      `${credential.name}: detected ${result.buckets.length} bucket(s), paired ${added.length}${added.length ? `: ${added.join(', ')}` : ''}`,
    );
  }
}

/**
 * Pairs a bucket with a stored credential (after checking it can reach the bucket), or with
 * 'public' for a bucket anyone may read (requests then go unsigned; checked at `endpoint`, or AWS).
 */
export async function pairBucket(ctx: CredsContext, uri: string, name: string | undefined, endpoint?: string, sas?: string): Promise<void> {
  const target = parseBucketUri(uri);
  // A SAS comes from a file or standard input (main.ts), never from the command line.
  if (sas !== undefined)
    return pairWithSas(ctx, target, /^https?:\/\//i.test(sas) ? sas.slice(sas.indexOf('?') + 1) : sas.replace(/^\?/, ''), endpoint);
  if (name === undefined) throw new UserError(`name the credential to pair ${target.uri} with`);
  if (name === 'public') {
    if (target.provider !== 's3') throw new UserError(`public pairing is for s3:// buckets; ${uri} needs a credential`);
    await checkPublic(ctx, target.uri, target.bucket, endpoint);
    // The pairing holds no endpoint: the mount's --endpoint (or AWS) says where the bucket is.
    await ctx.store.update((latest) => {
      latest.pairings[target.uri] = 'public';
    });
    ctx.print(`paired ${target.uri} with public (unsigned) access${endpoint ? `; mount it with --endpoint ${endpoint}` : ''}`);
    return;
  }
  const contents = await ctx.store.read();
  const credential = contents.credentials[name];
  if (!credential) throw new UserError(`no credential named '${name}' (see 'objmount creds list')`);
  const bucket = bucketOfUri(credential, target.uri);
  if (bucket === undefined) throw new UserError(`'${name}' is ${describe(credential)}: it cannot be paired with ${target.uri}`);
  try {
    await clientFor(credential, name).probe(bucket);
  } catch (error) {
    if (isStoreError(error)) throw new UserError(`cannot pair ${target.uri} with '${name}': ${error.message}`);
    throw error;
  }
  await ctx.store.update((latest) => {
    if (!latest.credentials[name]) throw new UserError(`credential '${name}' was removed meanwhile`);
    latest.pairings[target.uri] = name;
  });
  ctx.print(`paired ${target.uri} with '${name}'`);
}

/**
 * Checks with one unsigned request (ListObjectsV2, max-keys 1: what a mount's probe sends) that
 * the bucket exists at `endpoint` (else AWS) and lists for anyone; else one line saying what to do.
 */
async function checkPublic(ctx: CredsContext, uri: string, bucket: string, endpoint: string | undefined): Promise<void> {
  const s3 = await createStore(
    {
      provider: 's3',
      bucket,
      endpoint,
      region: ctx.env.AWS_REGION ?? ctx.env.AWS_DEFAULT_REGION ?? 'us-east-1',
      pathStyle: endpoint !== undefined,
      credentials: async () => ({ accessKeyId: '', secretAccessKey: '' }),
      signatureVersion: 'none',
    },
    { credentialDescription: 'anonymous requests', purpose: 'check' },
  );
  const where = endpoint ?? 'AWS';
  try {
    await s3.probe('');
  } catch (error) {
    if (!isStoreError(error)) throw error;
    const failed = `cannot pair ${uri} with public access`;
    switch (error.code) {
      case 'NoSuchBucket':
        throw new UserError(
          `${failed}: there is no bucket '${bucket}' at ${where}: check the name${endpoint ? '' : ' (and name its store with --endpoint URL if it is not on AWS)'}`,
        );
      case 'AccessDenied':
      case 'InvalidCredentials':
        throw new UserError(
          `${failed}: ${where} does not let anyone list it without a key (${error.storeCode ?? 'AccessDenied'}): import a key for it ('objmount creds import FILE') and pair it with that`,
        );
      case 'Unreachable':
        throw new UserError(`${failed}: ${error.message}: check --endpoint and the network`);
      default:
        throw new UserError(`${failed}: ${error.message}`);
    }
  } finally {
    s3.destroy();
  }
}

/**
 * A container SAS (`pair az://account/container --sas FILE`, or `-` for standard input): stored as a credential of its
 * own, named after the container, checked against the container, and paired with it. The blob
 * endpoint is `--endpoint`, else that of a stored credential of the same account, else Azure's.
 */
async function pairWithSas(
  ctx: CredsContext,
  target: ReturnType<typeof parseBucketUri>,
  sas: string,
  endpointOption: string | undefined,
): Promise<void> {
  if (target.provider !== 'az') throw new UserError(`a SAS is for az:// containers; ${target.uri} needs a credential`);
  const account = target.uri.slice('az://'.length).split('/')[0]!;
  const contents = await ctx.store.read();
  const sibling = Object.values(contents.credentials).find(
    (c): c is StoredAzureCredential => c.provider === 'az' && c.account === account && c.endpoint !== undefined,
  );
  const endpoint = endpointOption ?? sibling?.endpoint;
  const name = `${account}-${target.bucket}`;
  const credential = { provider: 'az' as const, account, sas, ...(endpoint ? { endpoint } : {}), name };
  try {
    await clientFor(credential, name).probe(target.bucket);
  } catch (error) {
    if (isStoreError(error)) throw new UserError(`cannot pair ${target.uri} with the SAS: ${error.message}`);
    throw error;
  }
  await ctx.store.update((latest) => {
    latest.credentials[name] = { ...credential, origin: `a container SAS for ${target.uri}`, importedAt: new Date().toISOString() };
    latest.pairings[target.uri] = name;
  });
  ctx.print(`paired ${target.uri} with its SAS, stored as '${name}'`);
}

export async function unpairBucket(ctx: CredsContext, uri: string): Promise<void> {
  const key = parseBucketUri(uri).uri;
  await ctx.store.update((contents) => {
    if (!contents.pairings[key]) throw new UserError(`${key} is not paired (see 'objmount creds list')`);
    delete contents.pairings[key];
  });
  ctx.print(`unpaired ${key}`);
}

/** `mountedSources`: the sources of running mounts (`s3://bucket/prefix`), which keep their credential. */
export async function removeCredential(ctx: CredsContext, name: string, mountedSources: string[]): Promise<void> {
  const contents = await ctx.store.read();
  if (!contents.credentials[name]) throw new UserError(`no credential named '${name}' (see 'objmount creds list')`);
  const inUse = Object.entries(contents.pairings)
    .filter(([uri, n]) => n === name && mountedSources.some((source) => source === uri || source.startsWith(`${uri}/`)))
    .map(([uri]) => uri);
  if (inUse.length > 0) throw new UserError(`'${name}' is used by a running mount of ${inUse.join(', ')}: unmount it first`);
  const removed = await ctx.store.update((latest) => {
    delete latest.credentials[name];
    const pairs = Object.entries(latest.pairings).filter(([, n]) => n === name);
    for (const [uri] of pairs) delete latest.pairings[uri];
    return pairs.length;
  });
  ctx.print(`removed '${name}' and ${removed} pairing(s)`);
}

/** `s3://bucket`, `gs://bucket`, `az://account/container` or `swift://container`, checked and normalised. */
function parseBucketUri(uri: string): { provider: 's3' | 'az' | 'gs' | 'swift'; bucket: string; uri: string } {
  const match =
    /^(s3|gs):\/\/([a-zA-Z0-9._-]{1,255})\/?$/.exec(uri) ??
    /^(az):\/\/([a-z0-9]{3,24}\/[a-z0-9-]{3,63})\/?$/.exec(uri) ??
    /^(swift):\/\/([^/]{1,256})\/?$/.exec(uri);
  if (!match)
    throw new UserError(`'${uri}' is not a bucket URI: write it as s3://bucket, gs://bucket, az://account/container or swift://container`);
  const provider = match[1] as 's3' | 'az' | 'gs' | 'swift';
  const bucket = provider === 'az' ? match[2]!.split('/')[1]! : match[2]!;
  return { provider, bucket, uri: `${provider}://${match[2]}` };
}
