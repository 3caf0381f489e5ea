/**
 * CA bundles for stores behind self-signed or private-CA TLS (an on-premises gateway): read once,
 * checked to hold PEM certificates, and added to Node's own roots by `S3Store`.
 */

import { readFileSync } from 'node:fs';
import { UserError } from '../errors/user-error.js';

/** The PEM text of `path`; `namedBy` says where the path came from, for the error line. */
export function readCaBundle(path: string, namedBy: string): string {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    throw new UserError(`cannot read the CA bundle ${path} (${namedBy}): ${code === 'ENOENT' ? 'no such file' : (error as Error).message}`);
  }
  if (!text.includes('-----BEGIN CERTIFICATE-----')) {
    throw new UserError(`the CA bundle ${path} (${namedBy}) holds no PEM certificate ('-----BEGIN CERTIFICATE-----')`);
  }
  return text;
}
