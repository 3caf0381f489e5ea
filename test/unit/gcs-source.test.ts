/** gs:// sources. */

import { describe, expect, it } from 'vitest';

import { formatSource, parseSource } from '../../src/config/mount-options.js';

describe('parseSource for gs://', () => {
  it('reads a bucket and an optional prefix', () => {
    expect(parseSource('gs://my-bucket')).toEqual({ provider: 'gs', bucket: 'my-bucket', prefix: '' });
    expect(parseSource('gs://my_bucket.example.com/a/b/')).toEqual({ provider: 'gs', bucket: 'my_bucket.example.com', prefix: 'a/b/' });
    expect(formatSource(parseSource('gs://bkt/x/y'))).toBe('gs://bkt/x/y');
  });

  it('refuses names GCS would refuse, saying what a name may be', () => {
    for (const bad of ['ab', 'Upper', '-start', 'end-', 'a'.repeat(64), `${'a'.repeat(64)}.com`, 'a..b']) {
      expect(() => parseSource(`gs://${bad}`)).toThrow(
        `'gs://${bad}': '${bad}' is not a valid GCS bucket name (3 to 63 lower-case letters, digits, '-', '_' and '.', starting and ending with a letter or digit)`,
      );
    }
    expect(() => parseSource('gs://b-1/a//c')).toThrow(/empty path components/);
  });
});
