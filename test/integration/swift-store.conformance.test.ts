/** `SwiftStore` on a single-node Swift (Debian's, tempauth v1), held to the backend conformance suite. */

import { SWIFT_TEST_KEY, SWIFT_TEST_USER, startLocalSwift } from '../../src/demo/local-swift.js';
import { SwiftStore, type SwiftStoreOptions } from '../../src/storage/swift-store.js';
import { describeObjectStore } from '../conformance/object-store.conformance.js';

const CONTAINER = 'conformance';
const WRONG_KEY = 'not-the-key-of-test-tester';

describeObjectStore('SwiftStore on Swift (tempauth)', async () => {
  const swift = await startLocalSwift({ containers: [CONTAINER] });
  const stores: SwiftStore[] = [];
  const make = (overrides: Partial<SwiftStoreOptions> = {}) => {
    const store = new SwiftStore({
      container: CONTAINER,
      credentials: { authUrl: swift.authUrl, user: SWIFT_TEST_USER, key: SWIFT_TEST_KEY },
      credentialDescription: `user '${SWIFT_TEST_USER}' from the test`,
      maxAttempts: 2,
      ...overrides,
    });
    stores.push(store);
    return store;
  };
  return {
    store: make(),
    withWrongCredentials: () => make({ credentials: { authUrl: swift.authUrl, user: SWIFT_TEST_USER, key: WRONG_KEY } }),
    withMissingBucket: () => make({ container: 'no-such-container' }),
    wrongSecret: WRONG_KEY,
    close: async () => {
      for (const store of stores) store.destroy();
      await swift.close();
    },
  };
});
