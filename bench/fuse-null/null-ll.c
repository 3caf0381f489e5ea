/*
 * The same null file system as null.c on libfuse 3's low-level API with a single-threaded loop:
 * what a C file system that talks to the kernel directly can do, the second C limit of
 * bench/fuse-null.mjs (objmount's addon uses the low-level API too, on Node's event loop).
 *
 *   /zero (inode 2)   a 2 GiB file of zeros
 *   /null (inode 3)   takes any write and keeps nothing
 *   /e<N> (inode N+16), N < 1,000,000: distinct empty files for the metadata storm
 *
 * Usage: null-ll MOUNTPOINT TIMEOUT_SECONDS (runs in the foreground until unmounted)
 */
#define FUSE_USE_VERSION 314
#include <errno.h>
#include <fuse_lowlevel.h>
#include <stdlib.h>
#include <string.h>

#define ZERO_SIZE (2LL << 30)
#define ZERO_INO 2
#define NULL_INO 3
#define FIRST_ENTRY_INO 16

static double timeout_seconds;
static char *zeros;

static void null_init(void *userdata, struct fuse_conn_info *conn) {
  conn->max_write = 1 << 20;
  conn->max_read = 1 << 20;
}

static int attributes(fuse_ino_t ino, struct stat *st) {
  memset(st, 0, sizeof(*st));
  st->st_ino = ino;
  if (ino == FUSE_ROOT_ID) {
    st->st_mode = S_IFDIR | 0755;
    st->st_nlink = 2;
  } else if (ino == ZERO_INO || ino == NULL_INO || (ino >= FIRST_ENTRY_INO && ino < FIRST_ENTRY_INO + 1000000)) {
    st->st_mode = S_IFREG | 0644;
    st->st_nlink = 1;
    st->st_size = ino == ZERO_INO ? ZERO_SIZE : 0;
  } else {
    return ENOENT;
  }
  return 0;
}

static void null_lookup(fuse_req_t req, fuse_ino_t parent, const char *name) {
  fuse_ino_t ino = 0;
  if (parent == FUSE_ROOT_ID && strcmp(name, "zero") == 0) ino = ZERO_INO;
  else if (parent == FUSE_ROOT_ID && strcmp(name, "null") == 0) ino = NULL_INO;
  else if (parent == FUSE_ROOT_ID && name[0] == 'e' && atoi(name + 1) < 1000000) ino = FIRST_ENTRY_INO + atoi(name + 1);
  struct fuse_entry_param e;
  memset(&e, 0, sizeof(e));
  if (ino == 0 || attributes(ino, &e.attr) != 0) {
    fuse_reply_err(req, ENOENT);
    return;
  }
  e.ino = ino;
  e.attr_timeout = timeout_seconds;
  e.entry_timeout = timeout_seconds;
  fuse_reply_entry(req, &e);
}

static void null_getattr(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) {
  struct stat st;
  int err = attributes(ino, &st);
  if (err) fuse_reply_err(req, err);
  else fuse_reply_attr(req, &st, timeout_seconds);
}

static void null_setattr(fuse_req_t req, fuse_ino_t ino, struct stat *attr, int to_set, struct fuse_file_info *fi) {
  null_getattr(req, ino, fi);
}

static void null_open(fuse_req_t req, fuse_ino_t ino, struct fuse_file_info *fi) { fuse_reply_open(req, fi); }

static void null_read(fuse_req_t req, fuse_ino_t ino, size_t size, off_t off, struct fuse_file_info *fi) {
  if (off >= ZERO_SIZE) size = 0;
  else if (off + (off_t)size > ZERO_SIZE) size = ZERO_SIZE - off;
  memset(zeros, 0, size);  /* as null.c fills its buffer */
  fuse_reply_buf(req, zeros, size);
}

static void null_write(fuse_req_t req, fuse_ino_t ino, const char *buf, size_t size, off_t off, struct fuse_file_info *fi) {
  fuse_reply_write(req, size);
}

static const struct fuse_lowlevel_ops ops = {
    .init = null_init,
    .lookup = null_lookup,
    .getattr = null_getattr,
    .setattr = null_setattr,
    .open = null_open,
    .read = null_read,
    .write = null_write,
};

int main(int argc, char **argv) {
  if (argc != 3) return 2;
  timeout_seconds = atof(argv[2]);
  zeros = malloc(1 << 20);
  struct fuse_args args = FUSE_ARGS_INIT(0, NULL);
  fuse_opt_add_arg(&args, argv[0]);
  fuse_opt_add_arg(&args, "-o");
  fuse_opt_add_arg(&args, "fsname=null-c-ll,subtype=null,max_read=1048576");
  struct fuse_session *se = fuse_session_new(&args, &ops, sizeof(ops), NULL);
  if (se == NULL || fuse_session_mount(se, argv[1]) != 0) return 1;
  int res = fuse_session_loop(se);
  fuse_session_unmount(se);
  fuse_session_destroy(se);
  return res == 0 ? 0 : 1;
}
