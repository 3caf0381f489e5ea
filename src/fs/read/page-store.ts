/**
 * Bytes of an open file handed to the kernel's page cache, so that later reads of them are served
 * by the kernel without a request to the daemon. The FUSE layer provides it for each read, bound
 * to the read's handle; fs/ decides what to hand over (file-reader.ts, block-cache.ts).
 */

/**
 * Stores `data`, the file's bytes at `offset`, in the kernel's page cache; resolves with 0, or a
 * negative errno when refused (the file may be written meanwhile) or failed. `data` must stay
 * unchanged until it resolves.
 */
export type StorePages = (offset: number, data: Buffer) => Promise<number>;
