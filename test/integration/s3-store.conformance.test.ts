/** `S3Store` on the local S3 server, held to the backend conformance suite. */

import { LOCAL_S3_ACCESS_KEY, LOCAL_S3_SECRET_KEY, startLocalS3ServerProcess } from '../../src/demo/local-s3-server.js';
import { S3Store, type S3StoreOptions } from '../../src/storage/s3-store.js';
import { describeObjectStore } from '../conformance/object-store.conformance.js';

const BUCKET = 'conformance';
const WRONG_SECRET = 'wrong-secret-0123456789';

describeObjectStore('S3Store on the local S3 server', async () => {
  const server = await startLocalS3ServerProcess({ buckets: [BUCKET] });
  const stores: S3Store[] = [];
  const make = (overrides: Partial<S3StoreOptions> = {}) => {
    const store = new S3Store({
      bucket: BUCKET,
      endpoint: server.endpoint,
      region: 'us-east-1',
      pathStyle: true,
      credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: LOCAL_S3_SECRET_KEY }),
      credentialDescription: `access key ${LOCAL_S3_ACCESS_KEY} from the test`,
      maxAttempts: 2,
      ...overrides,
    });
    stores.push(store);
    return store;
  };
  return {
    store: make(),
    withWrongCredentials: () => make({ credentials: async () => ({ accessKeyId: LOCAL_S3_ACCESS_KEY, secretAccessKey: WRONG_SECRET }) }),
    withMissingBucket: () => make({ bucket: 'no-such-bucket' }),
    wrongSecret: WRONG_SECRET,
    async close() {
      for (const store of stores) store.destroy();
      await server.close();
    },
  };
});
