/**
 * The malloc settings the daemon runs with. glibc reads them only when a process starts, so
 * daemon mode (src/cli/main.ts) puts them in the daemon's environment, the systemd units set them
 * too, and the benchmarks, which mount in the foreground, pass them; a foreground mount run by
 * hand gets them only from its caller's environment. A variable already set is left as it is.
 *
 * - `MALLOC_ARENA_MAX=2`: two arenas instead of one per thread (libuv's thread pool), so freed
 *   buffers are reused instead of kept resident in many arenas (bench/load.mjs: peak RSS
 *   593 -> 521 MiB at --memory-limit 256M).
 * - `GLIBC_TUNABLES=glibc.malloc.hugetlb=1`: large allocations (8 MiB block buffers, 1 MiB FUSE
 *   blocks) are backed by transparent huge pages where the kernel allows them on request
 *   (`madvise`, Debian's default): a cold read fills fresh buffers, which otherwise costs a page
 *   fault per 4 KiB (bench/azure-read.mjs: 12.6 -> 9.2 daemon CPU s per GiB read).
 */
export const DAEMON_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
  GLIBC_TUNABLES: 'glibc.malloc.hugetlb=1',
};
