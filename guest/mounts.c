/*
 * What init mounts: the kernel filesystems and skiff's tools inside the
 * image, disks found by their virtio serial, and the VM's shares and
 * volumes (`mount.N=` lines of /skiff/config).
 */
#include "skiff-init.h"

#include <dirent.h>
#include <sys/mount.h>
#include <sys/wait.h>

/* The image sees the usual kernel filesystems and, at /dev/.skiff, skiff's tools. */
void mount_image_view(void) {
  mkdir_p(IMAGE "/proc", 0555);
  mkdir_p(IMAGE "/sys", 0555);
  mkdir_p(IMAGE "/dev", 0755);
  mount("proc", IMAGE "/proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("sysfs", IMAGE "/sys", "sysfs", MS_NOSUID | MS_NODEV | MS_NOEXEC, NULL);
  mount("devtmpfs", IMAGE "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
  mkdir_p(IMAGE "/dev/pts", 0755);
  mount("/dev/pts", IMAGE "/dev/pts", NULL, MS_BIND, NULL);
  mkdir_p(IMAGE "/dev/shm", 01777);
  mount("shm", IMAGE "/dev/shm", "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777");
  mkdir_p(IMAGE "/dev/.skiff", 0755);
  mount(TOOLS, IMAGE "/dev/.skiff", NULL, MS_BIND | MS_REC, NULL);
  mount(NULL, IMAGE "/dev/.skiff", NULL, MS_BIND | MS_REMOUNT | MS_RDONLY, NULL);
  symlink("/proc/self/fd", IMAGE "/dev/fd");
  symlink("/proc/self/fd/0", IMAGE "/dev/stdin");
  symlink("/proc/self/fd/1", IMAGE "/dev/stdout");
  symlink("/proc/self/fd/2", IMAGE "/dev/stderr");
  mkdir_p(IMAGE "/run", 0755);
  mkdir_p(IMAGE "/tmp", 01777);
}
/* The /dev path of the virtio disk whose serial is `serial`, or "" when none (yet). */
static void disk_by_serial(const char *serial, char *out, size_t cap) {
  out[0] = 0;
  DIR *d = opendir("/sys/block");
  if (!d) return;
  struct dirent *e;
  size_t len = strlen(serial);
  while ((e = readdir(d)) && !out[0]) {
    if (strncmp(e->d_name, "vd", 2) != 0) continue;
    char path[300];
    snprintf(path, sizeof path, "/sys/block/%s/serial", e->d_name);
    char *got = read_file(path, NULL);
    if (got && strncmp(got, serial, len) == 0 && (got[len] == 0 || got[len] == '\n')) snprintf(out, cap, "/dev/%s", e->d_name);
    free(got);
  }
  closedir(d);
}

int wait_for_disk(const char *serial, char *out, size_t cap, int ms) {
  for (int waited = 0; waited < ms; waited += 5) {
    disk_by_serial(serial, out, cap);
    if (out[0]) return 0;
    usleep(5000);
  }
  return -1;
}

static char *mounted[MAX_MOUNTS]; /* targets inside the image, unmounted in reverse at power-off */
static int nmounted;

/*
 * Mount in a child chrooted into the image, so the target resolves the way
 * the image's own programs see it (its absolute symlinks point into the
 * image, not into skiff's initramfs). Mounts are shared with PID 1.
 */
static int mount_in_image(const char *source, const char *target, const char *fs, unsigned long flags, const char *data) {
  pid_t pid = fork();
  if (pid == 0) {
    if (chroot(IMAGE) != 0 || chdir("/") != 0) _exit(errno);
    mkdir_p(target, 0755);
    _exit(mount(source, target, fs, flags, data) == 0 ? 0 : errno);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return EIO;
  return WIFEXITED(status) ? WEXITSTATUS(status) : EIO;
}

/*
 * `mount.N=FS SOURCE ro|rw TARGET`: a virtio-9p share by its tag, or an
 * ext4 volume by its disk's serial. A mount that fails ends the boot: the
 * workload must never write into the overlay believing it is on a volume.
 */
void mount_volumes(void) {
  struct mount_config mounts[MAX_MOUNTS];
  char bad[256];
  int n = config_mounts(mounts, bad, sizeof bad);
  if (n < 0) {
    logmsg("%s", bad);
    power_off();
  }
  for (int i = 0; i < n; i++) {
    const char *fs = mounts[i].fs, *source = mounts[i].source, *mode = mounts[i].mode, *target = mounts[i].target;
    unsigned long flags = strcmp(mode, "ro") == 0 ? MS_RDONLY : 0;
    int err;
    if (strcmp(fs, "9p") == 0) {
      /* No cache: the share is live both ways, host writes show at once. */
      err = mount_in_image(source, target, "9p", flags, "trans=virtio,version=9p2000.L,msize=262144,cache=none");
    } else {
      char dev[64];
      if (wait_for_disk(source, dev, sizeof dev, 5000) != 0) {
        logmsg("volume disk %s for %s did not appear", source, target);
        power_off();
      }
      err = mount_in_image(dev, target, "ext4", flags | MS_NOATIME, NULL);
    }
    if (err != 0) {
      logmsg("cannot mount %s %s at %s: %s", fs, source, target, strerror(err));
      power_off();
    }
    if (asprintf(&mounted[nmounted], "%s%s", IMAGE, target) >= 0) nmounted++;
    free(mounts[i].line);
  }
}

void unmount_volumes(void) {
  for (int i = nmounted - 1; i >= 0; i--)
    if (umount2(mounted[i], 0) != 0) umount2(mounted[i], MNT_DETACH);
}
