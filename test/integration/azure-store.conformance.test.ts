/** `AzureStore` on Azurite, held to the backend conformance suite. */

import { AZURITE_ACCOUNT, AZURITE_ACCOUNT_KEY, startLocalAzurite } from '../../src/demo/local-azurite.js';
import { AzureStore, type AzureStoreOptions } from '../../src/storage/azure-store.js';
import { describeObjectStore } from '../conformance/object-store.conformance.js';

const CONTAINER = 'conformance';
const WRONG_KEY = Buffer.from('not the account key at all, but base64 of the right kind').toString('base64');

describeObjectStore('AzureStore on Azurite', async () => {
  const azurite = await startLocalAzurite({ containers: [CONTAINER] });
  const make = (overrides: Partial<AzureStoreOptions> = {}) =>
    new AzureStore({
      account: AZURITE_ACCOUNT,
      container: CONTAINER,
      endpoint: azurite.endpoint,
      credential: { kind: 'sharedKey', accountKey: AZURITE_ACCOUNT_KEY },
      credentialDescription: `the account key of ${AZURITE_ACCOUNT} from the test`,
      maxAttempts: 2,
      ...overrides,
    });
  return {
    store: make(),
    withWrongCredentials: () => make({ credential: { kind: 'sharedKey', accountKey: WRONG_KEY } }),
    withMissingBucket: () => make({ container: 'no-such-container' }),
    wrongSecret: WRONG_KEY,
    close: () => azurite.close(),
  };
});
