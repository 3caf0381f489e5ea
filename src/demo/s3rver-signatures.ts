/**
 * Signature checks s3rver lacks (see local-s3-server.ts): header-signed V4 requests verified with
 * AWS's own signer (10), and V2 requests as AWS documents them, with the Date header (15).
 */

import { type Hash, type Hmac, createHash, createHmac } from 'node:crypto';

import { SignatureV4 } from '@smithy/signature-v4';

import { AWSAccount, type Context, S3Error } from './s3rver-internals.js';

/** The `Checksum` that SignatureV4 hashes and HMACs with: SHA-256 from node:crypto. */
class Sha256 {
  private readonly hash: Hash | Hmac;
  constructor(secret?: SourceData) {
    this.hash = secret === undefined ? createHash('sha256') : createHmac('sha256', toBytes(secret));
  }
  update(data: SourceData): void {
    this.hash.update(toBytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return this.hash.digest();
  }
  reset(): void {
    throw new Error('not used by SignatureV4');
  }
}

type SourceData = string | ArrayBuffer | ArrayBufferView;
function toBytes(data: SourceData): Uint8Array | string {
  if (typeof data === 'string') return data;
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return new Uint8Array(data);
}

/**
 * Query parameters signed as part of the resource in Signature V2 (AWS's list). Kept apart from
 * the client's copy in storage/signature-v2.ts on purpose: the server checks the client, so a
 * mistake in one list shows as a refused request instead of agreeing with itself.
 */
const V2_SUBRESOURCES = new Set([
  'acl',
  'cors',
  'delete',
  'lifecycle',
  'location',
  'logging',
  'notification',
  'partNumber',
  'policy',
  'requestPayment',
  'restore',
  'tagging',
  'torrent',
  'uploadId',
  'uploads',
  'versionId',
  'versioning',
  'versions',
  'website',
  'response-cache-control',
  'response-content-disposition',
  'response-content-encoding',
  'response-content-language',
  'response-content-type',
  'response-expires',
]);

/**
 * Verifies a header-signed Signature V2 request (`Authorization: AWS key:signature`) as AWS's S3
 * documentation defines the string to sign; presigned V2 URLs are not used by objmount.
 */
export function verifySignatureV2(ctx: Context): void {
  const match = /^AWS ([^:]+):(.+)$/.exec(ctx.get('authorization'));
  if (!match) return;
  const [, accessKeyId = '', signature] = match;
  const secretAccessKey = AWSAccount.registry.get(accessKeyId)?.accessKeys.get(accessKeyId);
  if (secretAccessKey === undefined) return; // authenticate() has answered InvalidAccessKeyId
  const url = ctx.originalUrl; // as sent
  const queryStart = url.indexOf('?');
  const path = queryStart < 0 ? url : url.slice(0, queryStart);
  const signed = [...new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart).replace(/\+/g, '%2B'))]
    .filter(([name]) => V2_SUBRESOURCES.has(name))
    .map(([name, value]) => (value === '' ? name : `${name}=${value}`))
    .sort();
  const resource = (ctx.state.vhost ? `/${ctx.params?.bucket ?? ''}` : '') + path + (signed.length ? `?${signed.join('&')}` : '');
  const amz = Object.keys(ctx.headers)
    .filter((name) => name.startsWith('x-amz-'))
    .sort()
    .map((name) => `${name}:${ctx.get(name).trim().replace(/\s+/g, ' ')}`);
  const date = ctx.get('x-amz-date') ? '' : ctx.get('date');
  const toSign = [ctx.method, ctx.get('content-md5'), ctx.get('content-type'), date, ...amz, resource].join('\n');
  if (createHmac('sha1', secretAccessKey).update(toSign, 'utf8').digest('base64') !== signature) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: accessKeyId },
    );
  }
}

/**
 * Signs a header-signed V4 request again with the secret of its access key (AWS's own signer,
 * given exactly the headers the client signed) and compares. Presigned URLs are left to s3rver.
 */
export async function verifySignatureV4(ctx: Context): Promise<void> {
  const match =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, ?SignedHeaders=([^,]+), ?Signature=([0-9a-f]+)$/.exec(
      ctx.get('authorization'),
    );
  const amzDate = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/.exec(ctx.get('x-amz-date'));
  if (!match || !amzDate) return;
  const [, accessKeyId = '', , region = '', service = '', signedHeaderList = '', signature] = match;
  const secretAccessKey = AWSAccount.registry.get(accessKeyId)?.accessKeys.get(accessKeyId);
  if (secretAccessKey === undefined) return; // authenticate() has answered InvalidAccessKeyId

  const url = ctx.originalUrl; // as sent: before s3rver's virtual-host rewrite
  const queryStart = url.indexOf('?');
  const query: Record<string, string | string[]> = {};
  for (const [name, value] of new URLSearchParams(queryStart < 0 ? '' : url.slice(queryStart).replace(/\+/g, '%2B'))) {
    const seen = query[name];
    query[name] = seen === undefined ? value : [...(Array.isArray(seen) ? seen : [seen]), value];
  }
  const signedHeaders = signedHeaderList.split(';');
  const headers = Object.fromEntries(signedHeaders.map((name) => [name, ctx.get(name)]));
  const signer = new SignatureV4({
    credentials: { accessKeyId, secretAccessKey },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: false, // S3 signs the path as sent
  });
  const [, year, month, day, hours, minutes, seconds] = amzDate.map(Number) as number[];
  const signed = await signer.sign(
    { method: ctx.method, protocol: 'http:', hostname: '', path: queryStart < 0 ? url : url.slice(0, queryStart), query, headers },
    {
      signingDate: new Date(Date.UTC(year!, month! - 1, day, hours, minutes, seconds)),
      signableHeaders: new Set(signedHeaders),
    },
  );
  const expected = /Signature=([0-9a-f]+)/.exec(String(signed.headers.authorization))?.[1];
  if (expected !== signature) {
    throw new S3Error(
      'SignatureDoesNotMatch',
      'The request signature we calculated does not match the signature you provided. Check your key and signing method.',
      { AWSAccessKeyId: accessKeyId },
    );
  }
}
