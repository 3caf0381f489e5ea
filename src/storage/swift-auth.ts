/**
 * Authentication for OpenStack Swift: turns a credential into a token and the storage URL the
 * token is for, and keeps that pair fresh.
 *
 * - v1 (tempauth, swauth, many providers' legacy endpoints): GET AUTH_URL with X-Auth-User and
 *   X-Auth-Key; the answer's X-Auth-Token and X-Storage-Url.
 * - v2 (Keystone, tenants): POST AUTH_URL/tokens; the token and the object-store endpoint of the
 *   service catalog.
 * - v3 (Keystone): POST AUTH_URL/auth/tokens with a password (user and project by name or ID,
 *   domains by name or ID) or an application credential; X-Subject-Token and the catalog.
 * - A pre-issued token and storage URL, used as they are (nothing to renew them with).
 *
 * The object-store endpoint is picked from the catalog by region (any when none is given; an
 * error naming the choices when several regions offer one) and interface (public by default).
 *
 * `SwiftSession` holds one token at a time: requests share it; it is renewed a minute before the
 * expiry the server announced, and once when the store answers 401 (a token revoked or expired
 * early), so the operation in progress does not fail. Messages never hold a password, key or token.
 */

import type { IncomingMessage } from 'node:http';

import { StoreError, type StoreErrorCode } from './object-store.js';
import { NetworkError, type SwiftHttp, TLS_CERTIFICATE_CODES, discard, header, readText } from './swift-http.js';

/** What a Swift credential can hold; the names follow rclone's Swift backend (and TrueNAS's form). */
export interface SwiftCredentials {
  /** '1', '2', '3', or 'token' (authToken + storageUrl); guessed from the rest when absent. */
  authVersion?: '1' | '2' | '3' | 'token';
  /** The auth endpoint: `https://host/auth/v1.0`, `https://keystone:5000/v3`. */
  authUrl?: string;
  /** User name (v1: often `account:user`). */
  user?: string;
  userId?: string;
  /** v1 key, or the Keystone password. */
  key?: string;
  /** The user's domain, by name or by ID (v3). */
  domain?: string;
  userDomainId?: string;
  /** The project (tenant), by name or ID. */
  tenant?: string;
  tenantId?: string;
  /** The project's domain, by name or ID (v3). */
  tenantDomain?: string;
  tenantDomainId?: string;
  region?: string;
  /** Which catalog endpoint: public (default), internal or admin. */
  endpointType?: 'public' | 'internal' | 'admin';
  /** Use this storage URL instead of the catalog's (or, with authToken, with that token). */
  storageUrl?: string;
  /** A pre-issued token, used with storageUrl. */
  authToken?: string;
  applicationCredentialId?: string;
  applicationCredentialName?: string;
  applicationCredentialSecret?: string;
}

export interface SwiftToken {
  token: string;
  /** The account URL, `https://host/v1/AUTH_project`, without a trailing slash. */
  storageUrl: string;
  /** When the token expires (ms since the epoch), if the server said. */
  expiresAt?: number;
}

/** Renew this long before the announced expiry. */
const RENEW_BEFORE_MS = 60_000;

export function authVersionOf(credentials: SwiftCredentials): '1' | '2' | '3' | 'token' {
  if (credentials.authVersion) return credentials.authVersion;
  if (credentials.authToken && credentials.storageUrl && !credentials.authUrl) return 'token';
  if (credentials.applicationCredentialId || credentials.applicationCredentialName) return '3';
  const url = credentials.authUrl ?? '';
  if (/\/v3\/?$/.test(url) || /\/v3\//.test(url)) return '3';
  if (/\/v2(\.0)?\/?$/.test(url)) return '2';
  if (/\/v1(\.0)?\/?$/.test(url) || /\/auth\/?$/.test(url)) return '1';
  if (credentials.domain || credentials.userDomainId || credentials.tenantDomain || credentials.tenantDomainId) return '3';
  return credentials.tenant || credentials.tenantId ? '2' : '1';
}

/** Who is authenticating, for messages: "user 'demo' (domain 'Default') at https://…/v3". */
export function describeSwiftCredentials(credentials: SwiftCredentials): string {
  const version = authVersionOf(credentials);
  if (version === 'token') return `a pre-issued token for ${credentials.storageUrl}`;
  if (credentials.applicationCredentialId) return `application credential ${credentials.applicationCredentialId} at ${credentials.authUrl}`;
  if (credentials.applicationCredentialName)
    return `application credential '${credentials.applicationCredentialName}' of user '${credentials.user ?? credentials.userId}' at ${credentials.authUrl}`;
  const who = credentials.user ? `user '${credentials.user}'` : `user ID ${credentials.userId}`;
  return `${who} (auth v${version}) at ${credentials.authUrl}`;
}

export class SwiftSession {
  private held?: SwiftToken;
  /** The authentication under way, shared by every request that needs a token meanwhile. */
  private pending?: Promise<SwiftToken>;

  constructor(
    private readonly credentials: SwiftCredentials,
    private readonly http: SwiftHttp,
    private readonly now: () => number = Date.now,
  ) {}

  /** A token that is not about to expire: the one held, or a new one. */
  async token(): Promise<SwiftToken> {
    const held = this.held;
    if (held && (held.expiresAt === undefined || held.expiresAt - this.now() > RENEW_BEFORE_MS)) return held;
    this.pending ??= authenticate(this.credentials, this.http, this.now)
      .then((token) => (this.held = token))
      .finally(() => (this.pending = undefined));
    return this.pending;
  }

  /** The store said 401 to this token: the next `token()` authenticates again (once, whoever asks). */
  forget(token: string): void {
    // A pre-issued token has nothing to renew it with: the 401 stands.
    if (this.held?.token === token && authVersionOf(this.credentials) !== 'token') this.held = undefined;
  }

  /** Whether a 401 can be cured by authenticating again. */
  get renewable(): boolean {
    return authVersionOf(this.credentials) !== 'token';
  }
}

/** One authentication, by the credential's version. */
export async function authenticate(credentials: SwiftCredentials, http: SwiftHttp, now: () => number = Date.now): Promise<SwiftToken> {
  const version = authVersionOf(credentials);
  if (version === 'token') {
    if (!credentials.authToken || !credentials.storageUrl)
      throw new StoreError('InvalidRequest', 'a pre-issued Swift token needs both the token and the storage URL');
    return { token: credentials.authToken, storageUrl: trimSlash(credentials.storageUrl) };
  }
  if (!credentials.authUrl) throw new StoreError('InvalidRequest', 'no Swift auth URL (OS_AUTH_URL, or auth in an rclone section)');
  const got =
    version === '1'
      ? await authenticateV1(credentials, http, now)
      : version === '2'
        ? await authenticateV2(credentials, http)
        : await authenticateV3(credentials, http);
  return credentials.storageUrl ? { ...got, storageUrl: trimSlash(credentials.storageUrl) } : got;
}

async function authenticateV1(c: SwiftCredentials, http: SwiftHttp, now: () => number): Promise<SwiftToken> {
  const url = c.authUrl!;
  if (!c.user || c.key === undefined) throw new StoreError('InvalidRequest', `Swift v1 auth at ${url} needs a user and a key`);
  const response = await send(http, { method: 'GET', url, headers: { 'x-auth-user': c.user, 'x-auth-key': c.key } }, url);
  discard(response);
  const status = response.statusCode ?? 0;
  failIfServerError(url, status);
  if (status === 401 || status === 403) {
    throw new StoreError(
      'InvalidCredentials',
      `${url} refused user '${c.user}' (HTTP ${status}): check the user name (account:user for tempauth) and the key`,
      `HTTP ${status}`,
    );
  }
  const token = header(response, 'x-auth-token') ?? header(response, 'x-storage-token');
  const storageUrl = header(response, 'x-storage-url');
  if (status >= 300 || !token || !storageUrl) {
    throw new StoreError(
      'InvalidRequest',
      `${url} is not a Swift v1 auth endpoint (HTTP ${status}, no X-Auth-Token and X-Storage-Url): check the auth URL and version`,
      `HTTP ${status}`,
    );
  }
  const seconds = Number(header(response, 'x-auth-token-expires'));
  return {
    token,
    storageUrl: trimSlash(storageUrl),
    expiresAt: Number.isFinite(seconds) && seconds > 0 ? now() + seconds * 1000 : undefined,
  };
}

async function authenticateV2(c: SwiftCredentials, http: SwiftHttp): Promise<SwiftToken> {
  const url = `${trimSlash(c.authUrl!).replace(/\/tokens$/, '')}${/\/v2(\.0)?$/.test(trimSlash(c.authUrl!)) ? '' : '/v2.0'}/tokens`;
  const auth: Record<string, unknown> = { passwordCredentials: { username: c.user, password: c.key } };
  if (c.tenantId) auth.tenantId = c.tenantId;
  else if (c.tenant) auth.tenantName = c.tenant;
  const { status, json } = await postJson(http, url, { auth });
  failIfServerError(c.authUrl!, status);
  if (status === 401)
    throw new StoreError(
      'InvalidCredentials',
      `Keystone at ${c.authUrl} refused user '${c.user}' for tenant '${c.tenant ?? c.tenantId}': check the user name, password and tenant`,
      'HTTP 401',
    );
  const access = (json as { access?: { token?: { id?: string; expires?: string }; serviceCatalog?: V2Service[] } } | undefined)?.access;
  if (status >= 300 || !access?.token?.id) throw notKeystone(c.authUrl!, 'v2.0', status);
  const services = (access.serviceCatalog ?? []).filter((s) => s.type === 'object-store');
  const kind = c.endpointType ?? 'public';
  const endpoints: Endpoint[] = services
    .flatMap((s) => s.endpoints ?? [])
    .flatMap((e) => {
      const url = e[`${kind}URL` as const];
      return url ? [{ region: e.region, interface: kind, url }] : [];
    });
  const storageUrl = c.storageUrl ?? pickEndpoint(endpoints, c, `tenant '${c.tenant ?? c.tenantId}'`);
  const expires = access.token.expires ? Date.parse(access.token.expires) : NaN;
  return { token: access.token.id, storageUrl: trimSlash(storageUrl), expiresAt: Number.isNaN(expires) ? undefined : expires };
}

async function authenticateV3(c: SwiftCredentials, http: SwiftHttp): Promise<SwiftToken> {
  const base = trimSlash(c.authUrl!).replace(/\/auth\/tokens$/, '');
  const url = `${base}${/\/v3$/.test(base) ? '' : '/v3'}/auth/tokens`;
  const appCredential = c.applicationCredentialId || c.applicationCredentialName;
  const userDomain = c.userDomainId ? { id: c.userDomainId } : c.domain ? { name: c.domain } : undefined;
  const user = c.userId ? { id: c.userId } : { name: c.user, ...(userDomain ? { domain: userDomain } : {}) };
  const identity = appCredential
    ? {
        methods: ['application_credential'],
        application_credential: c.applicationCredentialId
          ? { id: c.applicationCredentialId, secret: c.applicationCredentialSecret }
          : { name: c.applicationCredentialName, secret: c.applicationCredentialSecret, user },
      }
    : { methods: ['password'], password: { user: { ...user, password: c.key } } };
  if (!appCredential && !c.user && !c.userId)
    throw new StoreError('InvalidRequest', `Keystone auth at ${c.authUrl} needs a user name or ID (OS_USERNAME)`);
  const projectDomain = c.tenantDomainId ? { id: c.tenantDomainId } : c.tenantDomain ? { name: c.tenantDomain } : userDomain;
  const project = c.tenantId
    ? { id: c.tenantId }
    : c.tenant
      ? { name: c.tenant, ...(projectDomain ? { domain: projectDomain } : {}) }
      : undefined;
  // An application credential is scoped already; a password without a project gets a token that has no catalog.
  const scope = !appCredential && project ? { project } : undefined;
  const { status, json, response } = await postJson(http, url, { auth: { identity, ...(scope ? { scope } : {}) } });
  failIfServerError(c.authUrl!, status);
  const who = appCredential
    ? `application credential ${c.applicationCredentialId ?? `'${c.applicationCredentialName}'`}`
    : `user '${c.user ?? c.userId}'${userDomain ? ` (domain '${c.domain ?? c.userDomainId}')` : ''}`;
  const projectText = project
    ? `project '${c.tenant ?? c.tenantId}'${c.tenantId ? '' : ` in domain '${c.tenantDomain ?? c.tenantDomainId ?? c.domain ?? c.userDomainId ?? 'Default'}'`}`
    : 'no project';
  if (status === 401 && scope) {
    // Keystone says 401 for a wrong password and for an unknown project alike; an unscoped
    // attempt with the same identity tells which one it was.
    const unscoped = await postJson(http, url, { auth: { identity } });
    if (unscoped.status === 201) {
      throw new StoreError(
        'InvalidCredentials',
        `Keystone at ${c.authUrl} accepted ${who} but not ${projectText}: check OS_PROJECT_NAME (or OS_PROJECT_ID) and OS_PROJECT_DOMAIN_NAME; the user also needs a role on the project`,
        'HTTP 401',
      );
    }
  }
  if (status === 401) {
    throw new StoreError(
      'InvalidCredentials',
      `Keystone at ${c.authUrl} refused ${who}: wrong user name, password${appCredential ? ' (secret)' : ''} or user domain`,
      'HTTP 401',
    );
  }
  if (status === 404 && (json as { error?: unknown } | undefined)?.error) {
    const message = String((json as { error: { message?: string } }).error.message ?? '').split('\n')[0];
    throw new StoreError(
      'InvalidCredentials',
      `Keystone at ${c.authUrl}: ${message}: check the user, project and domain names`,
      'HTTP 404',
    );
  }
  // Keystone explains a 400 in JSON ({"error": {"message": ...}}); anything else is not Keystone.
  const keystoneError = (json as { error?: { message?: string } } | undefined)?.error?.message;
  if (status === 400 && keystoneError) {
    throw new StoreError('InvalidRequest', `Keystone at ${c.authUrl} refused the request: ${keystoneError.split('\n')[0]}`, 'HTTP 400');
  }
  const token = header(response, 'x-subject-token');
  const body = (json as { token?: { catalog?: V3Service[]; expires_at?: string } } | undefined)?.token;
  if (status !== 201 || !token || !body) throw notKeystone(c.authUrl!, 'v3', status);
  const endpoints = (body.catalog ?? [])
    .filter((s) => s.type === 'object-store')
    .flatMap((s) => s.endpoints ?? [])
    .map((e) => ({ region: e.region_id ?? e.region, interface: e.interface, url: e.url }));
  if (!c.storageUrl && !scope && !appCredential) {
    throw new StoreError(
      'InvalidRequest',
      `Keystone at ${c.authUrl}: ${who} authenticated without a project, so there is no object-store endpoint: set OS_PROJECT_NAME or OS_PROJECT_ID`,
    );
  }
  const storageUrl = c.storageUrl ?? pickEndpoint(endpoints, c, projectText);
  const expires = body.expires_at ? Date.parse(body.expires_at) : NaN;
  return { token, storageUrl: trimSlash(storageUrl), expiresAt: Number.isNaN(expires) ? undefined : expires };
}

interface Endpoint {
  region?: string;
  interface?: string;
  url: string;
}
interface V3Service {
  type?: string;
  endpoints?: Array<{ region?: string; region_id?: string; interface?: string; url: string }>;
}
interface V2Service {
  type?: string;
  endpoints?: Array<{ region?: string; publicURL?: string; internalURL?: string; adminURL?: string }>;
}

function pickEndpoint(endpoints: Endpoint[], c: SwiftCredentials, project: string): string {
  const kind = c.endpointType ?? 'public';
  const offered = endpoints.map((e) => `${e.region ?? '(no region)'}/${e.interface}`).join(', ') || 'none';
  const fits = endpoints.filter((e) => e.interface === kind && (!c.region || e.region === c.region));
  const regions = [...new Set(fits.map((e) => e.region))];
  if (fits.length === 0 || regions.length > 1) {
    const why =
      fits.length === 0
        ? `has no object-store (Swift) endpoint for ${c.region ? `region '${c.region}'` : 'any region'} and interface '${kind}'`
        : `has object-store (Swift) endpoints for interface '${kind}' in several regions (${regions.join(', ')})`;
    throw new StoreError(
      'InvalidRequest',
      `the service catalog of ${project} ${why} (it offers: ${offered}): set the region (OS_REGION_NAME) or the interface (OS_INTERFACE)`,
    );
  }
  return fits[0]!.url;
}

/** A 5xx (or 429) of the auth service is its trouble, not the credential's: worth another try. */
function failIfServerError(authUrl: string, status: number): void {
  if (status >= 500 || status === 429)
    throw new StoreError(
      status === 429 ? 'Throttled' : 'Transient',
      `${authUrl} failed to authenticate (HTTP ${status})`,
      `HTTP ${status}`,
    );
}

function notKeystone(authUrl: string, version: string, status: number): StoreError {
  return new StoreError(
    'InvalidRequest',
    `${authUrl} did not answer as Keystone ${version} does (HTTP ${status}): check the auth URL (OS_AUTH_URL usually ends in /v3) and the auth version`,
    `HTTP ${status}`,
  );
}

async function postJson(
  http: SwiftHttp,
  url: string,
  body: unknown,
): Promise<{ status: number; json: unknown; response: IncomingMessage }> {
  const response = await send(
    http,
    {
      method: 'POST',
      url,
      headers: { 'content-type': 'application/json', accept: 'application/json' },
      body: Buffer.from(JSON.stringify(body)),
    },
    url,
  );
  const text = await readText(response).catch(() => '');
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch {
    json = undefined;
  }
  return { status: response.statusCode ?? 0, json, response };
}

async function send(http: SwiftHttp, request: Parameters<SwiftHttp['send']>[0], where: string): Promise<IncomingMessage> {
  try {
    return await http.send(request);
  } catch (error) {
    if (!(error instanceof NetworkError)) throw error;
    const code: StoreErrorCode = TLS_CERTIFICATE_CODES.test(error.code) ? 'UntrustedCertificate' : 'Unreachable';
    const hint = code === 'UntrustedCertificate' ? ': trust its CA with --ca-bundle' : ': check the auth URL and the network';
    throw new StoreError(code, `cannot reach ${where} (${error.code})${hint}`, error.code);
  }
}

function trimSlash(url: string): string {
  return url.replace(/\/+$/, '');
}
