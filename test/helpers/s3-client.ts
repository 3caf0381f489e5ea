import { S3Client } from '@aws-sdk/client-s3';

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY } from '../../src/demo/local-s3-server.js';

/** An SDK client for the local test server, configured as objmount configures its own. */
export function s3Client(
  endpoint: string,
  credentials = { accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY },
): S3Client {
  return new S3Client({
    endpoint,
    region: 'us-east-1',
    forcePathStyle: true,
    credentials,
    requestChecksumCalculation: 'WHEN_REQUIRED',
    responseChecksumValidation: 'WHEN_REQUIRED',
  });
}
