/** The version of an object that blocks are read from: what the block cache and its disk tier both key on. */
export interface ObjectVersion {
  key: string;
  etag: string;
  size: number;
}
