/**
 * The malloc settings the daemon runs with. glibc reads them only when a process starts, so
 * daemon mode (src/cli/main.ts) puts them in the daemon's environment, the systemd units set them
 * too, and the benchmarks, which mount in the foreground, pass them; a foreground mount run by
 * hand gets them only from its caller's environment. A variable already set is left as it is.
 *
 * - `MALLOC_ARENA_MAX=2`: two arenas instead of one per thread (libuv's thread pool), so freed
 *   buffers are reused instead of kept resident in many arenas (bench/load.mjs: peak RSS
 *   593 -> 521 MiB at --memory-limit 256M).
 *
 * Not set: `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (large buffers in transparent huge pages). It
 * cut the daemon's CPU for one cold sequential read (bench/azure-read.mjs: 12.6 -> 9.2 s per
 * GiB), but under bench/load.mjs it raised the peak RSS from 389 to 440 MiB (over the bound) and
 * lowered reads from 42 to 25 MiB/s (bench/RESULTS.md, Azure and Load sections).
 */
export const DAEMON_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
};
