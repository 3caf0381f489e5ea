/**
 * User metadata names on Azure Blob Storage must be C# identifiers (letters, digits and '_', not
 * starting with a digit), while the layers above use S3's free-form lower-case names. The names
 * objmount writes itself (`mode`, `uid`, `gid`, `mtime`, `atime`, `ctime`) are identifiers
 * already and are stored as they are, so blobfuse and other Azure tools see plain names. Any
 * other name is escaped reversibly: it gets the prefix `om_` and each character that is not a
 * letter or digit becomes `_XX_` (its UTF-8 bytes in hex). A name that starts with `om_` itself
 * is always escaped, so decoding never mistakes a plain name for an escaped one.
 */

import type { ObjectMetadata } from './object-store.js';

const ESCAPED = 'om_';
const IDENTIFIER = /^[A-Za-z_][A-Za-z0-9_]*$/;

export function encodeMetadataName(name: string): string {
  if (IDENTIFIER.test(name) && !name.toLowerCase().startsWith(ESCAPED)) return name;
  let out = ESCAPED;
  for (const char of name) {
    if (/[A-Za-z0-9]/.test(char)) out += char;
    else out += `_${Buffer.from(char, 'utf8').toString('hex')}_`;
  }
  return out;
}

export function decodeMetadataName(name: string): string {
  // Azure keeps the case a name was written with, but treat the prefix case-insensitively.
  if (!name.toLowerCase().startsWith(ESCAPED)) return name;
  const body = name.slice(ESCAPED.length);
  const bytes: number[] = [];
  const hex = /_([0-9a-fA-F]+)_|([A-Za-z0-9])/gy;
  let match: RegExpExecArray | null;
  let consumed = 0;
  while ((match = hex.exec(body)) !== null) {
    consumed = hex.lastIndex;
    if (match[1] !== undefined) bytes.push(...Buffer.from(match[1], 'hex'));
    else bytes.push(match[2]!.charCodeAt(0));
  }
  // Not something we wrote: show it as stored rather than guess.
  if (consumed !== body.length) return name;
  return Buffer.from(bytes).toString('utf8');
}

export function encodeMetadata(metadata: ObjectMetadata | undefined): Record<string, string> | undefined {
  if (!metadata) return undefined;
  return Object.fromEntries(Object.entries(metadata).map(([name, value]) => [encodeMetadataName(name), value]));
}

/** Lower-cases decoded names, as S3 (and so the layers above) expect them. */
export function decodeMetadata(metadata: Record<string, string> | undefined): ObjectMetadata {
  return Object.fromEntries(Object.entries(metadata ?? {}).map(([name, value]) => [decodeMetadataName(name).toLowerCase(), value]));
}
