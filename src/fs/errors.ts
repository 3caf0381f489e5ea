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
  | 'ENOSPC'
  | 'EDQUOT';

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
      default:
        return new FsError('EIO', `${path}: ${error.message}`, { cause: error });
    }
  }
  const detail = error instanceof Error ? error.message : String(error);
  // A full local disk (staging, journal) is the user's to fix: say so, as cp and editors do.
  const local = (error as NodeJS.ErrnoException | undefined)?.code;
  if (local === 'ENOSPC' || local === 'EDQUOT') return new FsError(local, `${path}: ${detail}`, { cause: error });
  return new FsError('EIO', `${path}: ${detail}`, { cause: error });
}
