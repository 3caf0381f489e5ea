/*
 * The C limit for bench/fuse-null.mjs: a libfuse 3 file system that does nothing, configured
 * like objmount's addon (high-level API, multithreaded loop, 1 MiB reads and writes, attr and
 * entry timeouts from the command line), so the benchmark measures only what FUSE costs.
 *
 *   /zero     a 2 GiB file of zeros
 *   /null     takes any write and keeps nothing
 *   /e<N>     N < 1,000,000: distinct empty files for the metadata storm
 *
 * Usage: null MOUNTPOINT TIMEOUT_SECONDS (runs in the foreground until unmounted)
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse.h>
#include <stdlib.h>
#include <string.h>

#define ZERO_SIZE (2LL << 30)

static double timeout_seconds;

static void *null_init(struct fuse_conn_info *conn, struct fuse_config *cfg) {
  conn->max_write = 1 << 20;
  conn->max_read = 1 << 20;
  cfg->attr_timeout = timeout_seconds;
  cfg->entry_timeout = timeout_seconds;
  cfg->negative_timeout = 0;
  return NULL;
}

static int null_getattr(const char *path, struct stat *st, struct fuse_file_info *fi) {
  memset(st, 0, sizeof(*st));
  if (strcmp(path, "/") == 0) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else if (strcmp(path, "/zero") == 0) {
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = ZERO_SIZE;
  } else if (strcmp(path, "/null") == 0 || (path[1] == 'e' && atoi(path + 2) < 1000000)) {
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
  } else {
    return -ENOENT;
  }
  return 0;
}

static int null_open(const char *path, struct fuse_file_info *fi) { return 0; }

static int null_truncate(const char *path, off_t size, struct fuse_file_info *fi) { return 0; }

static int null_read(const char *path, char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  if (off >= ZERO_SIZE) return 0;
  if (off + (off_t)size > ZERO_SIZE) size = ZERO_SIZE - off;
  memset(buf, 0, size);
  return size;
}

static int null_write(const char *path, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  return size;
}

static const struct fuse_operations ops = {
    .init = null_init,
    .getattr = null_getattr,
    .open = null_open,
    .truncate = null_truncate,
    .read = null_read,
    .write = null_write,
};

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  timeout_seconds = atof(argv[2]);
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  fuse_opt_add_arg(&args, argv[0]);
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, "fsname=null-c,subtype=null,max_read=1048576");
  struct fuse *fuse = fuse_new(&args, &ops, sizeof(ops), NULL);
  if (fuse == NULL || fuse_mount(fuse, argv[1]) != 0) return 1;
  struct fuse_loop_config *config = fuse_loop_cfg_create();
  fuse_loop_cfg_set_max_threads(config, 16);
  int res = fuse_loop_mt(fuse, config);
  fuse_loop_cfg_destroy(config);
  fuse_unmount(fuse);
  fuse_destroy(fuse);
  return res == 0 ? 0 : 1;
}
