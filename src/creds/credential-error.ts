/** No usable credential was found; the message says where we looked and what to do. */
export class CredentialError extends Error {
  override readonly name = 'CredentialError';
}
