/**
 * The malloc settings the daemon runs with. glibc reads them only when a process starts, so
 * daemon mode (src/cli/mount-command.ts) puts them in the daemon's environment, the systemd units set them
 * too, and the benchmarks, which mount in the foreground, pass them; a foreground mount run by
 * hand gets them only from its caller's environment. A variable already set is left as it is.
 *
 * - `MALLOC_ARENA_MAX=2`: two arenas instead of one per thread (libuv's thread pool), so freed
 *   buffers are reused instead of kept resident in many arenas: it lowers the daemon's peak
 *   resident size under load (bench/RESULTS.md, Load section).
 *
 * Not set: `GLIBC_TUNABLES=glibc.malloc.hugetlb=1` (large buffers in transparent huge pages). It
 * costs less CPU for one cold sequential read, but under many readers and writers it raised the
 * peak resident size over the bound and slowed the reads (bench/RESULTS.md, Azure and Load
 * sections, which have the figures).
 */
export const DAEMON_MALLOC_ENV: Readonly<Record<string, string>> = {
  MALLOC_ARENA_MAX: '2',
};
