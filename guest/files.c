/*
 * Files in the image for the native protocol's STAT, GET and PUT (native.c):
 * the host names a path as the guest sees it, and it is resolved with the
 * image's root as root (openat2 RESOLVE_IN_ROOT), as a chrooted process
 * would: an absolute symlink or `..` in the image cannot lead into the
 * agent's world around it, and no fork is needed per file.
 */
#include "skiff-init.h"

#include <linux/openat2.h>
#include <sys/stat.h>
#include <sys/syscall.h>

static int image_root = -1;

int open_in_image(const char *path, int flags, mode_t mode) {
  if (image_root < 0) image_root = open(IMAGE, O_PATH | O_DIRECTORY | O_CLOEXEC);
  if (image_root < 0) return -1;
  struct open_how how = {
      .flags = (uint64_t)(flags | O_CLOEXEC),
      .mode = (flags & O_CREAT) ? mode : 0,
      .resolve = RESOLVE_IN_ROOT | RESOLVE_NO_MAGICLINKS,
  };
  return (int)syscall(SYS_openat2, image_root, path, &how, sizeof how);
}

static void put64(unsigned char *b, uint64_t v) {
  put32(b, (uint32_t)(v >> 32));
  put32(b + 4, (uint32_t)v);
}

/* STAT_REPLY's payload for `path`: 4 bytes of errno, or 36 with what stat says. */
size_t stat_reply(unsigned char out[36], const char *path, int nofollow) {
  int fd = open_in_image(path, O_PATH | (nofollow ? O_NOFOLLOW : 0), 0);
  struct stat st;
  if (fd < 0 || fstat(fd, &st) != 0) {
    put32(out, (uint32_t)errno);
    if (fd >= 0) close(fd);
    return 4;
  }
  close(fd);
  put32(out, 0);
  put32(out + 4, st.st_mode);
  put32(out + 8, st.st_uid);
  put32(out + 12, st.st_gid);
  put64(out + 16, (uint64_t)st.st_size);
  put64(out + 24, (uint64_t)st.st_mtim.tv_sec);
  put32(out + 32, (uint32_t)st.st_nlink);
  return 36;
}
