/** `MemoryStore`, which the unit tests of the layers above stand on, held to the backend conformance suite. */

import { MemoryStore } from '../../src/storage/memory-store.js';
import { describeObjectStore } from '../conformance/object-store.conformance.js';

describeObjectStore('MemoryStore', async () => ({ store: new MemoryStore(), close: async () => {} }), {
  noCredentials: 'MemoryStore has no credentials',
  noMissingBuckets: 'MemoryStore has no buckets',
});
