/**
 * File-system errors, named by the errno they become. Only `fuse/` turns the name into a number;
 * every other layer throws `FsError` (or a `StoreError`, which `toFsError` maps here, once).
 */

import { isStoreError } from '../storage/object-store.js';

export type FsErrorCode =
  | 'ENOENT'
  | 'EEXIST'
  | 'ENOTDIR'
  | 'EISDIR'
  | 'ENOTEMPTY'
  | 'EACCES'
  | 'EPERM'
  | 'EXDEV'
  | 'EIO'
  | 'ESTALE'
  | 'EINVAL'
  | 'ENAMETOOLONG'
  | 'EBADF'
  | 'EFBIG'
  | 'ENOTSUP'
  | 'ENODATA'
  | 'EAGAIN'
  | 'EBUSY'
  | 'EROFS'
  | 'ETIMEDOUT'
  | 'EINTR'
  | 'ENOSPC'
  | 'EDQUOT'
  | 'ENXIO';

export class FsError extends Error {
  override readonly name = 'FsError';
  constructor(
    readonly code: FsErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Maps anything thrown below `fs/` to an `FsError`; the message keeps the store's explanation. */
export function toFsError(error: unknown, path: string): FsError {
  if (error instanceof FsError) return error;
  if (isStoreError(error)) {
    switch (error.code) {
      case 'NotFound':
        return new FsError('ENOENT', `${path}: ${error.message}`, { cause: error });
      case 'PreconditionFailed':
        return new FsError('ESTALE', `${path}: the object changed in the store while open; reopen it`, {
          cause: error,
        });
      case 'AccessDenied':
      case 'InvalidCredentials':
      case 'NoCredentials':
        return new FsError('EACCES', `${path}: ${error.message}`, { cause: error });
      case 'InvalidRequest':
        return new FsError('EINVAL', `${path}: ${error.message}`, { cause: error });
      case 'TimedOut':
        return new FsError('ETIMEDOUT', `${path}: ${error.message}`, { cause: error });
      case 'Aborted':
        return new FsError('EINTR', `${path}: ${error.message}`, { cause: error });
      default:
        return new FsError('EIO', `${path}: ${error.message}`, { cause: error });
    }
  }
  const detail = error instanceof Error ? error.message : String(error);
  // A full staging or cache disk is the user's to fix, and `cp` should say so ("No space left").
  const systemCode = (error as { code?: unknown } | null)?.code;
  if (systemCode === 'ENOSPC' || systemCode === 'EDQUOT') return new FsError(systemCode, `${path}: ${detail}`, { cause: error });
  return new FsError('EIO', `${path}: ${detail}`, { cause: error });
}
