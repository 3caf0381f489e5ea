/**
 * AWS Signature Version 2 for the S3 client, for old S3-compatible stores that never learned
 * Version 4 (s3cmd's `signature_v2 = True`, `--signature v2`). The AWS SDK v3 signs only with
 * V4, so this signer takes the place of its V4 signer (see `S3Store`); it signs with HMAC-SHA1 the
 * method, Content-MD5, Content-Type, Date, the x-amz-* headers and the resource (the bucket, the
 * key as sent, and the sub-resources among the query parameters), as AWS's S3 documentation
 * describes it. No library implements it for the SDK v3, hence this small file.
 */

import { createHmac } from 'node:crypto';

import type { AwsCredentialIdentity, HttpRequest } from '@smithy/types';

/** Query parameters that name a sub-resource, and so are signed (AWS's list). */
const SUBRESOURCES = new Set([
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

/** Headers only Version 4 uses; a V2 store could take them for signed x-amz-* headers. */
const V4_ONLY = ['authorization', 'x-amz-date', 'x-amz-content-sha256'];

export class SignatureV2Signer {
  /** `bucket`: the store's bucket, which a virtual-hosted request carries in its host name. */
  constructor(private readonly bucket: string) {}

  async sign(request: HttpRequest, identity: AwsCredentialIdentity): Promise<HttpRequest> {
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(request.headers)) {
      if (!V4_ONLY.includes(name.toLowerCase())) headers[name.toLowerCase()] = value;
    }
    headers.date = new Date().toUTCString();
    if (identity.sessionToken) headers['x-amz-security-token'] = identity.sessionToken;
    request.headers = headers;
    headers.authorization = `AWS ${identity.accessKeyId}:${signatureV2(request, identity.secretAccessKey, this.bucket)}`;
    return request;
  }
}

/** The string V2 signs, exported for tests. */
export function stringToSignV2(request: HttpRequest, bucket: string): string {
  const headers = request.headers;
  const amzHeaders = Object.keys(headers)
    .filter((name) => name.startsWith('x-amz-'))
    .sort()
    .map((name) => `${name}:${String(headers[name]).trim().replace(/\s+/g, ' ')}`);
  // Path-style requests carry the bucket in the path already; virtual-hosted ones in the host.
  const virtualHosted = bucket !== '' && request.hostname.startsWith(`${bucket}.`);
  let resource = (virtualHosted ? `/${bucket}` : '') + (request.path || '/');
  const subresources = Object.entries(request.query ?? {})
    .filter(([name]) => SUBRESOURCES.has(name))
    .map(([name, value]) => {
      const first = Array.isArray(value) ? value[0] : value;
      return first === null || first === undefined || first === '' ? name : `${name}=${first}`;
    })
    .sort();
  if (subresources.length > 0) resource += `?${subresources.join('&')}`;
  return [request.method, headers['content-md5'] ?? '', headers['content-type'] ?? '', headers.date ?? '', ...amzHeaders, resource].join(
    '\n',
  );
}

function signatureV2(request: HttpRequest, secretAccessKey: string, bucket: string): string {
  return createHmac('sha1', secretAccessKey).update(stringToSignV2(request, bucket), 'utf8').digest('base64');
}
