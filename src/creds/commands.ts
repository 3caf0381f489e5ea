/**
 * `objmount creds …`: import, list, show, verify, pair, unpair and remove S3-compatible
 * credentials. Every command prints what it did in a line or two (or JSON with `--json`), never
 * a secret, and fails with one line naming what to fix. A failed command changes nothing.
 */

import { readFile } from 'node:fs/promises';

import { resolve as resolvePath } from 'node:path';

import { UserError } from '../daemon/user-error.js';
import { isStoreError } from '../storage/object-store.js';
import { S3Store } from '../storage/s3-store.js';
import { type CredentialFormat, CredentialFormatError, type ImportedCredential, parseCredentials, parseEnvironment } from './formats.js';
import { CredentialStore, type StoredCredential, maskKey } from './store.js';
import { readCaBundle } from './ca-bundle.js';

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

/** An S3 client for a stored or imported credential (bucket '' for account-level calls). */
export function storeFor(credential: Omit<StoredCredential, 'name' | 'origin' | 'importedAt'>, bucket: string, name: string): S3Store {
  return new S3Store({
    bucket,
    endpoint: credential.endpoint,
    region: credential.region ?? 'us-east-1',
    pathStyle: credential.pathStyle ?? credential.endpoint !== undefined,
    credentials: async () => ({
      accessKeyId: credential.accessKeyId,
      secretAccessKey: credential.secretAccessKey,
      sessionToken: credential.sessionToken,
    }),
    credentialDescription: `credential '${name}' (access key ${maskKey(credential.accessKeyId)})`,
    maxAttempts: 2,
    connectTimeoutMs: 3_000,
    signatureVersion: credential.signatureVersion,
    caCertificates: credential.caBundle ? readCaBundle(credential.caBundle, `credential '${name}'`) : undefined,
    insecure: credential.insecure,
  });
}

/** What a credential's ListBuckets says: its buckets, or that it may not list (a restricted key). */
async function detectBuckets(credential: ImportedCredential, name: string): Promise<{ buckets: string[] } | { denied: true }> {
  const s3 = storeFor(credential, '', name);
  try {
    return { buckets: await s3.listBuckets() };
  } catch (error) {
    if (isStoreError(error, 'AccessDenied')) return { denied: true };
    if (isStoreError(error)) throw new UserError(`cannot import ${name}: ${error.message}`);
    throw error;
  } finally {
    s3.destroy();
  }
}

export async function importCredentials(ctx: CredsContext, options: ImportOptions): Promise<void> {
  let found: ImportedCredential[];
  let origin: string;
  try {
    if (options.fromEnv) {
      origin = 'the environment';
      found = [parseEnvironment(ctx.env)];
    } else {
      const file = options.file ?? '-';
      origin = file === '-' ? 'standard input' : file;
      const text = file === '-' ? await ctx.readStdin() : await readFile(file, 'utf8').catch((error: NodeJS.ErrnoException) => {
        throw new UserError(`cannot read ${file}: ${error.code === 'ENOENT' ? 'no such file' : error.message}`);
      });
      found = parseCredentials(origin, text, options.format, options.profile);
    }
  } catch (error) {
    if (error instanceof CredentialFormatError) throw new UserError(error.message);
    throw error;
  }
  if (options.name !== undefined && found.length > 1) {
    throw new UserError(`${origin} holds ${found.length} credentials: --name names one; use --profile to pick it`);
  }
  const existing = (await ctx.store.read()).credentials;
  const named = found.map((credential) => {
    const endpoint = options.endpoint ?? credential.endpoint;
    const name = options.name ?? credential.suggestedName ?? defaultName(endpoint);
    if (!/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/.test(name)) throw new UserError(`'${name}' is not a usable name: use letters, digits, '.', '_' and '-' (--name)`);
    if (existing[name] && !options.force) throw new UserError(`a credential named '${name}' exists: choose another with --name, or replace it with --force`);
    const { suggestedName: _suggested, ...rest } = credential;
    const signatureVersion = options.signatureVersion ?? credential.signatureVersion;
    const caBundle = options.caBundle !== undefined ? resolvePath(options.caBundle) : credential.caBundle;
    const insecure = options.insecure || credential.insecure;
    return {
      ...rest,
      endpoint,
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
        for (const bucket of result.buckets) contents.pairings[`s3://${bucket}`] ??= credential.name;
      }
    }
  });
  for (const { credential, result } of detected) {
    const where = credential.endpoint ?? 'AWS';
    const head = `Imported '${credential.name}' (access key ${maskKey(credential.accessKeyId)} at ${where})`;
    if ('denied' in result) {
      ctx.print(`${head}. It may not list buckets: pair each bucket with 'objmount creds pair s3://BUCKET ${credential.name}'`);
    } else {
      const buckets = result.buckets;
      ctx.print(`${head}. Detected ${buckets.length} bucket${buckets.length === 1 ? '' : 's'}, paired ${buckets.length}${buckets.length ? `: ${buckets.join(', ')}` : ''}`);
    }
  }
}

function defaultName(endpoint: string | undefined): string {
  if (!endpoint) return 'aws';
  try {
    return new URL(endpoint).hostname.replace(/[^A-Za-z0-9._-]/g, '-');
  } catch {
    return 's3';
  }
}

/** The credential without its secrets, for `list`, `show` and `--json`. */
function publicView(credential: StoredCredential, pairings: Record<string, string>) {
  return {
    name: credential.name,
    provider: credential.provider,
    endpoint: credential.endpoint ?? null,
    region: credential.region ?? null,
    pathStyle: credential.pathStyle ?? credential.endpoint !== undefined,
    signatureVersion: credential.signatureVersion ?? 'v4',
    accessKey: maskKey(credential.accessKeyId),
    secret: '********',
    sessionToken: credential.sessionToken ? '********' : null,
    origin: credential.origin,
    importedAt: credential.importedAt,
    buckets: Object.entries(pairings)
      .filter(([, name]) => name === credential.name)
      .map(([uri]) => uri),
  };
}

export async function listCredentials(ctx: CredsContext, json: boolean): Promise<void> {
  const contents = await ctx.store.read();
  const views = Object.values(contents.credentials).map((credential) => publicView(credential, contents.pairings));
  if (json) {
    ctx.print(JSON.stringify({ credentials: views, pairings: contents.pairings }, null, 2));
    return;
  }
  if (views.length === 0) {
    ctx.print(`no credentials in ${ctx.store.file}: add some with 'objmount creds import FILE'`);
    return;
  }
  for (const view of views) {
    ctx.print(`${view.name}  ${view.provider}  ${view.endpoint ?? 'AWS'}  ${view.region ?? '-'}  key ${view.accessKey}  ${view.buckets.length} bucket(s)`);
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
    const paired = Object.entries(contents.pairings).filter(([, n]) => n === credential.name).map(([uri]) => uri.slice('s3://'.length));
    try {
      const result = await detectBuckets(credential, credential.name);
      const listing = 'denied' in result ? 'may not list buckets' : `lists ${result.buckets.length} bucket(s)`;
      const reachable = [];
      for (const bucket of paired) {
        const s3 = storeFor(credential, bucket, credential.name);
        try {
          await s3.probe('');
          reachable.push(`${bucket} ok`);
        } catch (error) {
          failures += 1;
          reachable.push(`${bucket}: ${isStoreError(error) ? error.code : 'failed'}`);
        } finally {
          s3.destroy();
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
      ctx.print(`${credential.name}: may not list buckets; pair them with 'objmount creds pair s3://BUCKET ${credential.name}'`);
      continue;
    }
    const added = await ctx.store.update((latest) => {
      const fresh = result.buckets.filter((bucket) => latest.pairings[`s3://${bucket}`] === undefined);
      for (const bucket of fresh) latest.pairings[`s3://${bucket}`] = credential.name;
      return fresh;
    });
    ctx.print(`${credential.name}: detected ${result.buckets.length} bucket(s), paired ${added.length}${added.length ? `: ${added.join(', ')}` : ''}`);
  }
}

export async function pairBucket(ctx: CredsContext, uri: string, name: string): Promise<void> {
  const bucket = bucketOf(uri);
  const contents = await ctx.store.read();
  const credential = contents.credentials[name];
  if (!credential) throw new UserError(`no credential named '${name}' (see 'objmount creds list')`);
  const s3 = storeFor(credential, bucket, name);
  try {
    await s3.probe('');
  } catch (error) {
    if (isStoreError(error)) throw new UserError(`cannot pair s3://${bucket} with '${name}': ${error.message}`);
    throw error;
  } finally {
    s3.destroy();
  }
  await ctx.store.update((latest) => {
    if (!latest.credentials[name]) throw new UserError(`credential '${name}' was removed meanwhile`);
    latest.pairings[`s3://${bucket}`] = name;
  });
  ctx.print(`paired s3://${bucket} with '${name}'`);
}

export async function unpairBucket(ctx: CredsContext, uri: string): Promise<void> {
  const key = `s3://${bucketOf(uri)}`;
  await ctx.store.update((contents) => {
    if (!contents.pairings[key]) throw new UserError(`${key} is not paired (see 'objmount creds list')`);
    delete contents.pairings[key];
  });
  ctx.print(`unpaired ${key}`);
}

export async function removeCredential(ctx: CredsContext, name: string, mountedBuckets: string[]): Promise<void> {
  const contents = await ctx.store.read();
  if (!contents.credentials[name]) throw new UserError(`no credential named '${name}' (see 'objmount creds list')`);
  const inUse = Object.entries(contents.pairings)
    .filter(([uri, n]) => n === name && mountedBuckets.includes(uri.slice('s3://'.length)))
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

function bucketOf(uri: string): string {
  const match = /^s3:\/\/([a-zA-Z0-9._-]{1,255})\/?$/.exec(uri);
  if (!match) throw new UserError(`'${uri}' is not a bucket URI: write it as s3://bucket`);
  return match[1]!;
}
