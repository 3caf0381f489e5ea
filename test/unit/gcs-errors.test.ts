/** How failures of @google-cloud/storage and of Google's token endpoint become StoreErrors. */

import { describe, expect, it } from 'vitest';

import { type GcsErrorContext, translateGcsError } from '../../src/storage/gcs-errors.js';
import { StoreError } from '../../src/storage/object-store.js';

const context = (operation: string, key = 'dir/file'): GcsErrorContext => ({
  description: 'gs://bucket',
  bucket: 'bucket',
  operation,
  key,
  endpointDescription: 'the Google Cloud Storage endpoint',
  credentialDescription: 'service account sa@p.iam.gserviceaccount.com from /k.json',
});

/** What the SDK throws for an HTTP error: an ApiError with the status in `code` and GCS's reasons. */
function apiError(status: number, message: string, reason?: string): Error {
  return Object.assign(new Error(message), { code: status, errors: reason ? [{ reason, message }] : [] });
}

function networkError(code: string): Error {
  return Object.assign(new Error(`request to http://127.0.0.1:1/storage/v1/b/bucket/o failed, reason: connect ${code} 127.0.0.1:1`), {
    code,
    errno: code,
  });
}

describe('translateGcsError', () => {
  it('maps a missing object to NotFound and a missing bucket to NoSuchBucket', () => {
    expect(translateGcsError(apiError(404, 'No such object: bucket/dir/file', 'notFound'), context('head'))).toMatchObject({
      code: 'NotFound',
      message: 'gs://bucket/dir/file: not found',
    });
    // GCS says which in the message only.
    expect(translateGcsError(apiError(404, 'The specified bucket does not exist.', 'notFound'), context('head'))).toMatchObject({
      code: 'NoSuchBucket',
      message: "bucket 'bucket' does not exist at the Google Cloud Storage endpoint",
    });
    // A listing names no object: its 404 is the bucket's.
    expect(translateGcsError(apiError(404, 'Not Found'), context('list', 'prefix/'))).toMatchObject({ code: 'NoSuchBucket' });
    expect(translateGcsError(apiError(404, 'Not Found'), context('probe', ''))).toMatchObject({ code: 'NoSuchBucket' });
  });

  it('maps a failed generation condition (412) to PreconditionFailed', () => {
    const error = translateGcsError(
      apiError(412, 'At least one of the pre-conditions you specified did not hold.', 'conditionNotMet'),
      context('get'),
    );
    expect(error).toMatchObject({
      code: 'PreconditionFailed',
      storeCode: 'conditionNotMet',
      message: 'gs://bucket/dir/file: changed in the store while open',
    });
  });

  it('maps 401 to InvalidCredentials and 403 to AccessDenied, naming the credential but no secret', () => {
    const rejected = translateGcsError(apiError(401, 'Invalid Credentials', 'authError'), context('list', ''));
    expect(rejected).toMatchObject({ code: 'InvalidCredentials' });
    expect(rejected.message).toBe(
      'gs://bucket: the store rejected service account sa@p.iam.gserviceaccount.com from /k.json: HTTP 401 authError',
    );
    const denied = translateGcsError(
      apiError(
        403,
        'sa@p.iam.gserviceaccount.com does not have storage.objects.get access to the Google Cloud Storage object.',
        'forbidden',
      ),
      context('get'),
    );
    expect(denied).toMatchObject({ code: 'AccessDenied', storeCode: 'forbidden' });
    expect(denied.message).toBe(
      'gs://bucket/dir/file: get denied to service account sa@p.iam.gserviceaccount.com from /k.json: HTTP 403 forbidden',
    );
  });

  it("maps the token endpoint's refusal of a key (400 invalid_grant) to InvalidCredentials", () => {
    const gaxios = Object.assign(new Error('invalid_grant: Invalid JWT Signature.'), {
      response: { status: 400, data: { error: 'invalid_grant' } },
    });
    expect(translateGcsError(gaxios, context('list', ''))).toMatchObject({ code: 'InvalidCredentials', storeCode: 'invalid_grant' });
  });

  it('maps 429 and 503 to Throttled, other 5xx to Transient, 501 and other 4xx to InvalidRequest', () => {
    expect(translateGcsError(apiError(429, 'rate limit', 'rateLimitExceeded'), context('put'))).toMatchObject({ code: 'Throttled' });
    expect(translateGcsError(apiError(503, 'Service Unavailable', 'backendError'), context('put'))).toMatchObject({ code: 'Throttled' });
    expect(translateGcsError(apiError(500, 'Internal Error', 'backendError'), context('put'))).toMatchObject({ code: 'Transient' });
    expect(translateGcsError(apiError(502, 'Bad Gateway'), context('put'))).toMatchObject({ code: 'Transient' });
    expect(translateGcsError(apiError(501, 'Not Implemented'), context('compose'))).toMatchObject({
      code: 'InvalidRequest',
      message: 'gs://bucket/dir/file: compose refused: HTTP 501: not supported by the Google Cloud Storage endpoint',
    });
    expect(translateGcsError(apiError(400, 'The object name is too long.', 'invalid'), context('put'))).toMatchObject({
      code: 'InvalidRequest',
    });
  });

  it('maps connection failures to Unreachable, naming the endpoint; resets and timeouts to Transient', () => {
    expect(translateGcsError(networkError('ECONNREFUSED'), context('get'))).toMatchObject({
      code: 'Unreachable',
      message: 'cannot reach the Google Cloud Storage endpoint (ECONNREFUSED) for gs://bucket/dir/file',
    });
    expect(translateGcsError(networkError('ENOTFOUND'), context('get'))).toMatchObject({ code: 'Unreachable' });
    expect(translateGcsError(networkError('ECONNRESET'), context('get'))).toMatchObject({ code: 'Transient', storeCode: 'ECONNRESET' });
    expect(
      translateGcsError(Object.assign(new Error('network timeout at: http://x'), { type: 'request-timeout' }), context('get')),
    ).toMatchObject({ code: 'Transient' });
  });

  it("blames Google's token endpoint, not the store's, when getting a token fails", () => {
    const gaxios = Object.assign(
      new Error('request to https://oauth2.googleapis.com/token failed, reason: getaddrinfo ENOTFOUND oauth2.googleapis.com'),
      {
        code: 'ENOTFOUND',
        config: { url: 'https://oauth2.googleapis.com/token', body: 'grant_type=…&assertion=SECRET' },
      },
    );
    const error = translateGcsError(gaxios, context('list', ''));
    expect(error).toMatchObject({ code: 'Unreachable' });
    expect(error.message).toBe(
      "cannot reach Google's token endpoint oauth2.googleapis.com (ENOTFOUND) to authenticate service account sa@p.iam.gserviceaccount.com from /k.json for gs://bucket",
    );
  });

  it('maps a missing default credential to NoCredentials with what to do', () => {
    const error = translateGcsError(
      new Error(
        'Could not load the default credentials. Browse to https://cloud.google.com/docs/authentication/getting-started for more information.',
      ),
      context('list', ''),
    );
    expect(error).toMatchObject({ code: 'NoCredentials' });
    expect(error.message).toContain('--key-file');
  });

  it('keeps messages to one bounded line, even when the server answered with a web page', () => {
    const page = `<!DOCTYPE html>\n<html><body>${'x'.repeat(5000)}</body></html>`;
    const error = translateGcsError(apiError(500, page), context('get'));
    expect(error.message).not.toContain('\n');
    expect(error.message.length).toBeLessThan(400);
  });

  it('passes StoreErrors through unchanged', () => {
    const original = new StoreError('NotFound', 'x');
    expect(translateGcsError(original, context('get'))).toBe(original);
  });
});
