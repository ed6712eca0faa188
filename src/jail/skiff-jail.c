/*
 * skiff-jail: start one VM's QEMU in a jail, as Firecracker's jailer does.
 *
 * skiff runs this (as root, or as a plain user) with a description of the
 * jail and QEMU's argv. Before QEMU runs, still privileged, it:
 *
 *   - joins the VM's cgroups           --cgroup DIR        (writes its pid to DIR/cgroup.procs)
 *   - opens TAPs on their bridges       --tap IF:BRIDGE:FD  (QEMU gets the open TAP as fd FD:
 *                                                           QEMU needs no CAP_NET_ADMIN and the
 *                                                           TAP vanishes with QEMU)
 *   - builds a private mount namespace whose root is an empty tmpfs holding only
 *     what QEMU needs, each bound at its own absolute path so QEMU's argv does
 *     not change:                       --ro PATH, --rw PATH, --dev NAME,
 *                                       --idmap PATH:UID:GID (read-write, idmapped: files
 *                                       UID:GID own on disk are the jail user's, and the
 *                                       jail user's new files are UID:GID's on disk;
 *                                       --idmap-ro read-only)
 *   - keeps guest RAM shared among VMs  --ram-fd N          (an inherited memfd QEMU maps
 *                                                           privately; refused unless sealed
 *                                                           against writes and resizes, since
 *                                                           QEMU opens it read-write)
 *   - drops to                          --uid N --gid N [--groups N,N]
 *     with no capabilities (bounding set emptied; --bind-low-ports keeps
 *     CAP_NET_BIND_SERVICE alone, for published ports below 1024) and
 *     no_new_privs,
 *   - and execs QEMU, which installs its own seccomp filter (-sandbox).
 *
 * Without root (--rootless) the mount namespace lives in a new user namespace
 * that maps only the caller's own ids, and there are no uid, cgroup or TAP
 * steps. --unjailed skips the namespace, the uid change and the filter (the
 * path before jails, kept to measure what the jail costs).
 *
 * --wait SOCKET makes it behave like QEMU's -daemonize: it returns once QEMU
 * accepts connections on SOCKET (its QMP socket) and prints QEMU's pid; QEMU
 * goes on in a session of its own with stdio on --log FILE. If QEMU dies
 * first, the end of the log is printed and the exit status is QEMU's.
 * --log-limit BYTES puts a relay between QEMU and FILE that keeps at most
 * BYTES of one start's output and the last 16 KiB of the rest, and with
 * --console-log FILE --console-fd N, between QEMU's console log (the pipe
 * QEMU finds at fd N) and FILE, rotated at BYTES (see "the log relay"
 * below): both are partly the guest's to fill.
 *
 * --supervise POLICY --status FILE (POLICY on-failure|always): instead of
 * becoming QEMU, the child stays as QEMU's parent and starts it again, with
 * backoff, when it ends as the policy says; SIGTERM to the supervisor means
 * "the VM is being stopped: do not restart". FILE records each start and end.
 * --first-only N: QEMU's last N arguments are for its first start only (a
 * restore from a snapshot): restarts boot cold.
 *
 * Everything is argv: no shell, no config parsing. Each failure names the
 * step and errno on stderr and exits 125 (126 for exec), so skiff can tell a
 * jail failure from QEMU's own exit codes.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/if_tun.h>
#include <linux/audit.h>
#include <linux/capability.h>
#include <linux/filter.h>
#include <linux/mount.h>
#include <linux/seccomp.h>
#include <linux/sockios.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define MAX_ITEMS 64
#define JAIL_FAIL 125

struct bind {
  const char *path;
  enum { BIND_RO, BIND_RW, BIND_IDMAP, BIND_DEV } kind;
  uid_t disk_uid;
  gid_t disk_gid;
  int readonly;
};

struct tap {
  char ifname[IFNAMSIZ];
  char bridge[IFNAMSIZ];
  int fd;
};

static struct {
  uid_t uid;
  gid_t gid;
  int has_ids;
  gid_t groups[16];
  int ngroups;
  const char *cgroups[8];
  int ncgroups;
  struct bind binds[MAX_ITEMS];
  int nbinds;
  struct tap taps[8];
  int ntaps;
  const char *root;
  const char *wait_socket;
  const char *log;
  const char *supervise;
  const char *status;
  int rootless;
  int unjailed;
  int low_ports;
  int first_only;
  int ram_fd; /* 0: none */
  long long log_limit; /* 0: QEMU writes the log itself, unbounded */
  const char *console_log; /* relayed from a pipe QEMU gets at console_fd */
  int console_fd;
  char **argv;
  char *argv_start, *argv_end; /* the jailer's own argv strings, cleared in the log relay */
} jail;

/* Where failures are told: stderr, or in the child the pipe its parent reads. */
static int errfd = 2;

static void die(const char *fmt, ...) {
  char msg[1024];
  va_list ap;
  int saved = errno;
  size_t n;
  va_start(ap, fmt);
  vsnprintf(msg, sizeof msg, fmt, ap);
  va_end(ap);
  n = strlen(msg);
  if (saved != 0) snprintf(msg + n, sizeof msg - n, ": %s", strerror(saved));
  dprintf(errfd, "skiff-jail: %s\n", msg);
  _exit(JAIL_FAIL);
}

static void usage(const char *what) {
  errno = 0;
  die("bad arguments: %s", what);
}

static unsigned long number(const char *text, const char *what) {
  char *end;
  errno = 0;
  unsigned long n = strtoul(text, &end, 10);
  if (errno != 0 || *end != '\0' || end == text) usage(what);
  return n;
}

static void absolute(const char *path) {
  if (path[0] != '/' || strstr(path, "/../") != NULL || strstr(path, "\n") != NULL) usage(path);
}

static void parse(int argc, char **argv) {
  int i;
  jail.argv_start = argv[0];
  jail.argv_end = argv[argc - 1] + strlen(argv[argc - 1]) + 1;
  for (i = 1; i < argc; i++) {
    const char *a = argv[i];
    const char *v = i + 1 < argc ? argv[i + 1] : NULL;
    if (strcmp(a, "--") == 0) {
      jail.argv = &argv[i + 1];
      break;
    }
    if (strcmp(a, "--rootless") == 0) {
      jail.rootless = 1;
      continue;
    }
    if (strcmp(a, "--unjailed") == 0) {
      jail.unjailed = 1;
      continue;
    }
    if (strcmp(a, "--bind-low-ports") == 0) {
      jail.low_ports = 1;
      continue;
    }
    if (v == NULL) usage(a);
    i++;
    if (strcmp(a, "--uid") == 0) {
      jail.uid = number(v, a);
      jail.has_ids |= 1;
    } else if (strcmp(a, "--gid") == 0) {
      jail.gid = number(v, a);
      jail.has_ids |= 2;
    } else if (strcmp(a, "--groups") == 0) {
      char *copy = strdup(v), *save = NULL, *tok;
      for (tok = strtok_r(copy, ",", &save); tok != NULL; tok = strtok_r(NULL, ",", &save)) {
        if (jail.ngroups == 16) usage(a);
        jail.groups[jail.ngroups++] = number(tok, a);
      }
    } else if (strcmp(a, "--cgroup") == 0) {
      absolute(v);
      if (jail.ncgroups == 8) usage(a);
      jail.cgroups[jail.ncgroups++] = v;
    } else if (strcmp(a, "--ro") == 0 || strcmp(a, "--rw") == 0 || strcmp(a, "--dev") == 0 || strcmp(a, "--idmap") == 0 ||
               strcmp(a, "--idmap-ro") == 0) {
      struct bind *b;
      if (jail.nbinds == MAX_ITEMS) usage(a);
      b = &jail.binds[jail.nbinds++];
      if (strncmp(a, "--idmap", 7) == 0) {
        /* PATH:UID:GID, split from the right: the path may hold colons. */
        char *copy = strdup(v);
        char *g = strrchr(copy, ':');
        char *u;
        if (g == NULL) usage(a);
        *g++ = '\0';
        u = strrchr(copy, ':');
        if (u == NULL) usage(a);
        *u++ = '\0';
        b->path = copy;
        b->disk_uid = number(u, a);
        b->disk_gid = number(g, a);
        b->kind = BIND_IDMAP;
        b->readonly = strcmp(a, "--idmap-ro") == 0;
      } else if (strcmp(a, "--dev") == 0) {
        if (strchr(v, '/') != NULL && strncmp(v, "net/", 4) != 0) usage(a);
        b->path = v;
        b->kind = BIND_DEV;
        continue;
      } else {
        b->path = v;
        b->kind = strcmp(a, "--ro") == 0 ? BIND_RO : BIND_RW;
      }
      absolute(b->path);
    } else if (strcmp(a, "--tap") == 0) {
      /* IF:BRIDGE:FD */
      struct tap *t;
      char *copy = strdup(v), *br, *fd;
      if (jail.ntaps == 8) usage(a);
      t = &jail.taps[jail.ntaps++];
      br = strchr(copy, ':');
      if (br == NULL) usage(a);
      *br++ = '\0';
      fd = strchr(br, ':');
      if (fd == NULL) usage(a);
      *fd++ = '\0';
      if (strlen(copy) == 0 || strlen(copy) >= IFNAMSIZ || strlen(br) == 0 || strlen(br) >= IFNAMSIZ) usage(a);
      strcpy(t->ifname, copy);
      strcpy(t->bridge, br);
      t->fd = number(fd, a);
      if (t->fd < 3 || t->fd > 64) usage(a);
    } else if (strcmp(a, "--root") == 0) {
      absolute(v);
      jail.root = v;
    } else if (strcmp(a, "--wait") == 0) {
      absolute(v);
      jail.wait_socket = v;
    } else if (strcmp(a, "--log") == 0) {
      absolute(v);
      jail.log = v;
    } else if (strcmp(a, "--supervise") == 0) {
      if (strcmp(v, "on-failure") != 0 && strcmp(v, "always") != 0) usage(a);
      jail.supervise = v;
    } else if (strcmp(a, "--status") == 0) {
      absolute(v);
      jail.status = v;
    } else if (strcmp(a, "--first-only") == 0) {
      jail.first_only = (int)number(v, a);
    } else if (strcmp(a, "--console-log") == 0) {
      absolute(v);
      jail.console_log = v;
    } else if (strcmp(a, "--console-fd") == 0) {
      jail.console_fd = (int)number(v, a);
      if (jail.console_fd < 3 || jail.console_fd > 64) usage(a);
    } else if (strcmp(a, "--log-limit") == 0) {
      jail.log_limit = (long long)number(v, a);
      if (jail.log_limit < 65536) usage(a);
    } else if (strcmp(a, "--ram-fd") == 0) {
      jail.ram_fd = (int)number(v, a);
      if (jail.ram_fd < 3 || jail.ram_fd > 64) usage(a);
    } else {
      usage(a);
    }
  }
  if (jail.argv == NULL || jail.argv[0] == NULL) usage("no command after --");
  for (i = 0; i < jail.ntaps; i++) {
    if (jail.ram_fd != 0 && jail.taps[i].fd == jail.ram_fd) usage("--tap and --ram-fd name one descriptor");
    if (jail.console_fd != 0 && jail.taps[i].fd == jail.console_fd) usage("--tap and --console-fd name one descriptor");
  }
  if (jail.console_fd != 0 && jail.console_fd == jail.ram_fd) usage("--ram-fd and --console-fd name one descriptor");
  if ((jail.console_log == NULL) != (jail.console_fd == 0)) usage("--console-log and --console-fd go together");
  if (jail.console_log != NULL && jail.log_limit == 0) usage("--console-log needs --log-limit");
  absolute(jail.argv[0]);
  if (jail.root == NULL && !jail.unjailed) usage("--root is required");
  if (jail.log == NULL) usage("--log is required");
  if (jail.supervise != NULL && jail.status == NULL) usage("--supervise needs --status");
  if (jail.first_only > 0) {
    int n = 0;
    while (jail.argv[n] != NULL) n++;
    if (jail.first_only >= n) usage("--first-only takes fewer arguments than QEMU has");
  }
  if (!jail.rootless && !jail.unjailed && jail.has_ids != 3) usage("--uid and --gid are required with root");
  if (jail.unjailed && (jail.has_ids != 0 || jail.nbinds > 0)) usage("--unjailed takes no ids or binds");
  if (jail.rootless && (jail.ntaps > 0 || jail.ncgroups > 0 || jail.has_ids != 0)) usage("--rootless takes no ids, TAPs or cgroups");
}

/* ---- steps run as root, before the mount namespace ---------------------- */

static void join_cgroups(void) {
  int i;
  for (i = 0; i < jail.ncgroups; i++) {
    char path[4096];
    int fd;
    snprintf(path, sizeof path, "%s/cgroup.procs", jail.cgroups[i]);
    fd = open(path, O_WRONLY | O_CLOEXEC);
    if (fd < 0 || write(fd, "0\n", 2) != 2) die("cannot join cgroup %s", jail.cgroups[i]);
    close(fd);
  }
}

static void open_taps(void) {
  int i, sock;
  if (jail.ntaps == 0) return;
  sock = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (sock < 0) die("socket for bridge ioctls");
  for (i = 0; i < jail.ntaps; i++) {
    struct tap *t = &jail.taps[i];
    struct ifreq ifr;
    int fd = open("/dev/net/tun", O_RDWR | O_CLOEXEC);
    if (fd < 0) die("open /dev/net/tun");
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, t->ifname);
    ifr.ifr_flags = IFF_TAP | IFF_NO_PI | IFF_VNET_HDR;
    if (ioctl(fd, TUNSETIFF, &ifr) < 0) die("cannot create TAP %s", t->ifname);
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, t->bridge);
    ifr.ifr_ifindex = (int)if_nametoindex(t->ifname);
    if (ifr.ifr_ifindex == 0) die("TAP %s vanished", t->ifname);
    if (ioctl(sock, SIOCBRADDIF, &ifr) < 0) die("cannot put TAP %s on bridge %s", t->ifname, t->bridge);
    memset(&ifr, 0, sizeof ifr);
    strcpy(ifr.ifr_name, t->ifname);
    if (ioctl(sock, SIOCGIFFLAGS, &ifr) < 0) die("flags of TAP %s", t->ifname);
    ifr.ifr_flags |= IFF_UP;
    if (ioctl(sock, SIOCSIFFLAGS, &ifr) < 0) die("cannot bring TAP %s up", t->ifname);
    /* Park it above the target numbers; moved into place after every open. */
    t->fd = -t->fd;
    if (dup3(fd, 100 + i, O_CLOEXEC) < 0) die("dup TAP fd");
    close(fd);
  }
  close(sock);
}

static void place_taps(void) {
  int i;
  for (i = 0; i < jail.ntaps; i++) {
    int target = -jail.taps[i].fd;
    if (dup2(100 + i, target) < 0) die("dup TAP fd to %d", target);
    close(100 + i);
  }
}

/* ---- the mount namespace ------------------------------------------------ */

static void write_file(const char *path, const char *text) {
  int fd = open(path, O_WRONLY | O_CLOEXEC);
  if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text)) die("write %s", path);
  close(fd);
}

/* mkdir -p of `path` (relative to cwd, the new root), parents 0755. */
static void make_dirs(const char *path, mode_t last) {
  char buf[4096];
  char *p;
  snprintf(buf, sizeof buf, "%s", path);
  for (p = buf + 1; *p != '\0'; p++) {
    if (*p != '/') continue;
    *p = '\0';
    if (mkdir(buf, 0755) < 0 && errno != EEXIST) die("mkdir %s", buf);
    *p = '/';
  }
  if (last != 0 && mkdir(buf, last) < 0 && errno != EEXIST) die("mkdir %s", buf);
}

/* An empty file or directory at `inner` to mount `outer` on. */
static void mountpoint_for(const char *outer, const char *inner) {
  struct stat st;
  if (stat(outer, &st) < 0) die("cannot bind %s", outer);
  if (S_ISDIR(st.st_mode)) {
    make_dirs(inner, 0755);
  } else {
    int fd;
    make_dirs(inner, 0);
    fd = open(inner, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
    if (fd < 0) die("mountpoint %s", inner);
    close(fd);
  }
}

/* Read-only remounts must keep the flags the source mount has locked (nosuid, nodev, noexec). */
static unsigned long locked_flags(const char *path) {
  struct statvfs sv;
  unsigned long flags = 0;
  if (statvfs(path, &sv) < 0) return 0;
  if (sv.f_flag & ST_NOSUID) flags |= MS_NOSUID;
  if (sv.f_flag & ST_NODEV) flags |= MS_NODEV;
  if (sv.f_flag & ST_NOEXEC) flags |= MS_NOEXEC;
  return flags;
}

static void bind_path(const char *outer, const char *inner, int readonly, unsigned long extra) {
  mountpoint_for(outer, inner);
  if (mount(outer, inner, NULL, MS_BIND | MS_REC, NULL) < 0) die("bind %s", outer);
  if (readonly || extra != 0) {
    unsigned long flags = MS_BIND | MS_REMOUNT | extra | locked_flags(inner) | (readonly ? MS_RDONLY : 0);
    if (mount(NULL, inner, NULL, flags, NULL) < 0) die("remount %s", outer);
  }
}

/* A user namespace whose mapping makes disk_uid:disk_gid the jail's ids, for an idmapped mount. */
static int idmap_userns(uid_t disk_uid, gid_t disk_gid) {
  int ready[2], hold[2], fd;
  char path[64], map[64];
  pid_t pid;
  if (pipe2(ready, O_CLOEXEC) < 0 || pipe2(hold, O_CLOEXEC) < 0) die("pipe");
  pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    char c;
    close(ready[0]);
    close(hold[1]);
    if (unshare(CLONE_NEWUSER) < 0) _exit(1);
    if (write(ready[1], "x", 1) != 1) _exit(1);
    if (read(hold[0], &c, 1) < 0) _exit(1);
    _exit(0);
  }
  {
    char c;
    close(ready[1]);
    if (read(ready[0], &c, 1) != 1) die("user namespace for an idmapped mount");
  }
  snprintf(path, sizeof path, "/proc/%d/uid_map", pid);
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)disk_uid, (unsigned)jail.uid);
  write_file(path, map);
  snprintf(path, sizeof path, "/proc/%d/setgroups", pid);
  write_file(path, "deny");
  snprintf(path, sizeof path, "/proc/%d/gid_map", pid);
  snprintf(map, sizeof map, "%u %u 1\n", (unsigned)disk_gid, (unsigned)jail.gid);
  write_file(path, map);
  snprintf(path, sizeof path, "/proc/%d/ns/user", pid);
  fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) die("open %s", path);
  close(hold[1]);
  waitpid(pid, NULL, 0);
  close(ready[0]);
  close(hold[0]);
  return fd;
}

static void bind_idmapped(const struct bind *b, const char *inner) {
  struct mount_attr attr;
  int userns = idmap_userns(b->disk_uid, b->disk_gid);
  int tree = (int)syscall(SYS_open_tree, AT_FDCWD, b->path, OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC);
  if (tree < 0) die("open_tree %s", b->path);
  memset(&attr, 0, sizeof attr);
  attr.attr_set = MOUNT_ATTR_IDMAP | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | (b->readonly ? MOUNT_ATTR_RDONLY : 0);
  attr.userns_fd = (uint64_t)userns;
  if (syscall(SYS_mount_setattr, tree, "", AT_EMPTY_PATH, &attr, sizeof attr) < 0) {
    die("cannot idmap %s (its filesystem may not support idmapped mounts)", b->path);
  }
  mountpoint_for(b->path, inner);
  if (syscall(SYS_move_mount, tree, "", AT_FDCWD, inner, MOVE_MOUNT_F_EMPTY_PATH) < 0) die("move_mount %s", b->path);
  close(tree);
  close(userns);
}

/* /lib, /bin, … are symlinks into /usr on a merged-/usr host: copy the link, else bind read-only. */
static void system_path(const char *path) {
  char target[4096];
  ssize_t n = readlink(path, target, sizeof target - 1);
  if (n >= 0) {
    target[n] = '\0';
    if (symlink(target, path + 1) < 0 && errno != EEXIST) die("symlink %s", path);
    return;
  }
  if (access(path, F_OK) == 0) bind_path(path, path + 1, 1, MS_NOSUID | MS_NODEV);
}

static void enter_mount_namespace(void) {
  int i;
  if (jail.rootless) {
    char map[64];
    uid_t uid = getuid();
    gid_t gid = getgid();
    if (unshare(CLONE_NEWUSER | CLONE_NEWNS) < 0) die("unshare user+mount namespace (are unprivileged user namespaces allowed?)");
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)uid, (unsigned)uid);
    write_file("/proc/self/uid_map", map);
    write_file("/proc/self/setgroups", "deny");
    snprintf(map, sizeof map, "%u %u 1\n", (unsigned)gid, (unsigned)gid);
    write_file("/proc/self/gid_map", map);
  } else if (unshare(CLONE_NEWNS) < 0) {
    die("unshare mount namespace");
  }
  if (mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) < 0) die("make mounts private");
  if (mount("skiff-jail", jail.root, "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=1m,nr_inodes=4096") < 0) die("tmpfs on %s", jail.root);
  if (chdir(jail.root) < 0) die("chdir %s", jail.root);

  system_path("/usr");
  system_path("/lib");
  system_path("/lib64");
  system_path("/bin");
  system_path("/sbin");
  /* The dynamic loader's cache, and the host's resolver list that QEMU's user networking forwards DNS to. */
  if (access("/etc/ld.so.cache", R_OK) == 0) bind_path("/etc/ld.so.cache", "etc/ld.so.cache", 1, MS_NOSUID | MS_NODEV);
  if (access("/etc/resolv.conf", R_OK) == 0) bind_path("/etc/resolv.conf", "etc/resolv.conf", 1, MS_NOSUID | MS_NODEV);
  make_dirs("dev", 0755);
  make_dirs("tmp", 01777);
  /*
   * QEMU reaches files through /proc/self/fd (9p's xattrs): a proc of its
   * own that shows only processes (subset=pid) and only the jail user's own
   * (hidepid=invisible). Without root, a user namespace may not mount a new
   * proc without a pid namespace of its own: the host's is bound instead.
   */
  make_dirs("proc", 0555);
  if (mount("proc", "proc", "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible,subset=pid") < 0) {
    if (!jail.rootless || mount("/proc", "proc", NULL, MS_BIND | MS_REC, NULL) < 0) die("mount proc");
  }

  for (i = 0; i < jail.nbinds; i++) {
    const struct bind *b = &jail.binds[i];
    char inner[4096];
    if (b->kind == BIND_DEV) {
      char outer[4096];
      snprintf(outer, sizeof outer, "/dev/%s", b->path);
      snprintf(inner, sizeof inner, "dev/%s", b->path);
      bind_path(outer, inner, 0, MS_NOSUID);
      continue;
    }
    snprintf(inner, sizeof inner, "%s", b->path + 1);
    if (b->kind == BIND_IDMAP) {
      if (jail.rootless) die("idmapped mounts need root: %s", b->path);
      bind_idmapped(b, inner);
    } else {
      bind_path(b->path, inner, b->kind == BIND_RO, MS_NOSUID | MS_NODEV);
    }
  }

  /* The tmpfs becomes /, and the host's tree goes away entirely. */
  if (syscall(SYS_pivot_root, ".", ".") < 0) die("pivot_root");
  if (umount2(".", MNT_DETACH) < 0) die("detach the host's root");
  if (chdir("/") < 0) die("chdir /");
  if (mount(NULL, "/", NULL, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV, NULL) < 0) die("make the jail's root read-only");
}

/* ---- no set-id files, no device nodes ----------------------------------- */

/*
 * QEMU's own -sandbox filter blocks spawning and privilege changes; this one
 * (stacked under it) keeps a QEMU taken over by its guest from planting
 * set-id files or device nodes in what it can write (a bind mount's
 * directory, where the jail user may own files on the host's behalf):
 * chmod-family calls and file creation with S_ISUID/S_ISGID in the mode fail
 * with EPERM, mknod of anything but a plain file fails, and openat2 (whose
 * mode a filter cannot read)
 * fails with ENOSYS so that libc falls back to openat. 9p's mapped-xattr
 * model, which skiff uses, never needs any of them: modes live in xattrs.
 */
#define SETID (S_ISUID | S_ISGID)

struct filter {
  struct sock_filter ins[96];
  int n;
};

static void emit(struct filter *f, struct sock_filter ins) {
  if (f->n == (int)(sizeof f->ins / sizeof f->ins[0])) {
    errno = 0;
    die("seccomp filter too long");
  }
  f->ins[f->n++] = ins;
}

static struct sock_filter load(uint32_t offset) {
  struct sock_filter ins = BPF_STMT(BPF_LD | BPF_W | BPF_ABS, offset);
  return ins;
}

static struct sock_filter ret(uint32_t value) {
  struct sock_filter ins = BPF_STMT(BPF_RET | BPF_K, value);
  return ins;
}

static struct sock_filter jump(uint16_t op, uint32_t k, uint8_t jt, uint8_t jf) {
  struct sock_filter ins = BPF_JUMP(BPF_JMP | op | BPF_K, k, jt, jf);
  return ins;
}

#define ARG(n) (uint32_t) offsetof(struct seccomp_data, args[n])

/* System call `nr` fails with `err` outright. */
static void refuse(struct filter *f, int nr, int err) {
  emit(f, load(offsetof(struct seccomp_data, nr)));
  emit(f, jump(BPF_JEQ, (uint32_t)nr, 0, 1));
  emit(f, ret(SECCOMP_RET_ERRNO | (uint32_t)err));
}

/*
 * System call `nr` fails with EPERM when its mode (argument `mode`) has a
 * set-id bit; with `flags` >= 0 only when that argument asks to create.
 */
static void no_setid_mode(struct filter *f, int nr, int mode, int flags) {
  emit(f, load(offsetof(struct seccomp_data, nr)));
  emit(f, jump(BPF_JEQ, (uint32_t)nr, 0, flags >= 0 ? 7 : 4));
  if (flags >= 0) {
    emit(f, load(ARG(flags)));
    emit(f, jump(BPF_JSET, O_CREAT | __O_TMPFILE, 1, 0));
    emit(f, ret(SECCOMP_RET_ALLOW));
  }
  emit(f, load(ARG(mode)));
  emit(f, jump(BPF_JSET, SETID, 0, 1));
  emit(f, ret(SECCOMP_RET_ERRNO | EPERM));
  emit(f, ret(SECCOMP_RET_ALLOW));
}

/*
 * mknod only for plain files (S_IFREG), without set-id bits: 9p's
 * mapped-xattr model makes a guest's device node or fifo that way (its real
 * type lives in an xattr); a real device node on the host is refused.
 */
static void regular_mknod_only(struct filter *f, int nr, int mode) {
  struct sock_filter and_type = BPF_STMT(BPF_ALU | BPF_AND | BPF_K, S_IFMT);
  emit(f, load(offsetof(struct seccomp_data, nr)));
  emit(f, jump(BPF_JEQ, (uint32_t)nr, 0, 8));
  emit(f, load(ARG(mode)));
  emit(f, and_type);
  emit(f, jump(BPF_JEQ, S_IFREG, 1, 0));
  emit(f, ret(SECCOMP_RET_ERRNO | EPERM));
  emit(f, load(ARG(mode)));
  emit(f, jump(BPF_JSET, SETID, 0, 1));
  emit(f, ret(SECCOMP_RET_ERRNO | EPERM));
  emit(f, ret(SECCOMP_RET_ALLOW));
}

static void forbid_setid_files(void) {
  struct filter f = {.n = 0};
  struct sock_fprog prog;
  emit(&f, load(offsetof(struct seccomp_data, arch)));
  emit(&f, jump(BPF_JEQ, AUDIT_ARCH_X86_64, 1, 0));
  emit(&f, ret(SECCOMP_RET_KILL_PROCESS));
  /* x32 system calls (bit 30) would dodge the numbers below. */
  emit(&f, load(offsetof(struct seccomp_data, nr)));
  emit(&f, jump(BPF_JGE, 0x40000000, 0, 1));
  emit(&f, ret(SECCOMP_RET_KILL_PROCESS));
  regular_mknod_only(&f, SYS_mknod, 1);
  regular_mknod_only(&f, SYS_mknodat, 2);
  refuse(&f, SYS_openat2, ENOSYS);
  no_setid_mode(&f, SYS_chmod, 1, -1);
  no_setid_mode(&f, SYS_fchmod, 1, -1);
  no_setid_mode(&f, SYS_fchmodat, 2, -1);
  no_setid_mode(&f, 452 /* fchmodat2 */, 2, -1);
  no_setid_mode(&f, SYS_creat, 1, -1);
  no_setid_mode(&f, SYS_open, 2, 1);
  no_setid_mode(&f, SYS_openat, 3, 2);
  emit(&f, ret(SECCOMP_RET_ALLOW));
  prog.len = (unsigned short)f.n;
  prog.filter = f.ins;
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0) die("no_new_privs");
  if (syscall(SYS_seccomp, SECCOMP_SET_MODE_FILTER, 0, &prog) < 0) die("install the seccomp filter");
}

/* ---- dropping privileges ------------------------------------------------ */

/*
 * --bind-low-ports: the one capability a jailed QEMU may keep, to listen on
 * a published host port below 1024 (`-p 80:80`). Kept through the uid
 * change (KEEPCAPS), then made the only permitted, effective, inheritable
 * and ambient one, so that it survives exec into QEMU.
 */
static void keep_bind_capability(void) {
  struct __user_cap_header_struct header = {_LINUX_CAPABILITY_VERSION_3, 0};
  struct __user_cap_data_struct data[2];
  memset(data, 0, sizeof data);
  data[0].permitted = data[0].effective = data[0].inheritable = 1u << CAP_NET_BIND_SERVICE;
  if (syscall(SYS_capset, &header, data) < 0) die("keep CAP_NET_BIND_SERVICE");
  if (prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, CAP_NET_BIND_SERVICE, 0, 0) < 0) die("ambient CAP_NET_BIND_SERVICE");
}

static void drop_privileges(void) {
  int cap;
  prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL, 0, 0, 0);
  if (!jail.rootless) {
    for (cap = 0; cap <= 63; cap++) {
      if (jail.low_ports && cap == CAP_NET_BIND_SERVICE) continue;
      if (prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) < 0 && errno != EINVAL) die("drop capability %d", cap);
    }
    if (jail.low_ports && prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0) < 0) die("keepcaps");
    if (setgroups((size_t)jail.ngroups, jail.groups) < 0) die("setgroups");
    if (setresgid(jail.gid, jail.gid, jail.gid) < 0) die("setresgid %u", (unsigned)jail.gid);
    if (setresuid(jail.uid, jail.uid, jail.uid) < 0) die("setresuid %u", (unsigned)jail.uid);
    if (setresuid(0, 0, 0) == 0) {
      errno = 0;
      die("could regain root after dropping it");
    }
    if (jail.low_ports) keep_bind_capability();
  }
  if (prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) die("not dumpable");
  forbid_setid_files();
}

/* ---- starting QEMU ------------------------------------------------------ */

/* Opened before the mount namespace hides their paths. */
/*
 * QEMU (7.2) opens its RAM file read-write even to map it privately, and
 * the memfd behind --ram-fd is every forked VM's RAM at once: it must be
 * sealed so that no QEMU can change it (memfd.c in src/snapshot makes it so).
 */
static void check_ram_fd(void) {
  const int needed = F_SEAL_WRITE | F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_SEAL;
  int seals = fcntl(jail.ram_fd, F_GET_SEALS);
  if (seals < 0) die("--ram-fd %d is not a sealable memfd", jail.ram_fd);
  if ((seals & needed) != needed) {
    errno = 0;
    die("--ram-fd %d is not sealed against writes and resizes (seals 0x%x)", jail.ram_fd, seals);
  }
}

static int null_fd = -1, log_fd = -1;
static pid_t relay_pid = 0;

/*
 * The jailer's own descriptors live above every number QEMU gets one at
 * (TAPs from 3, --ram-fd and --console-fd up to 64; TAPs wait at 100 and
 * up until place_taps): opened low, the first TAPs replaced /dev/null and
 * the log, and QEMU wrote its stderr into a TAP, onto the bridge.
 */
#define OWN_FD_MIN 70

static int lift(int fd) {
  int high;
  if (fd < 0 || fd >= OWN_FD_MIN) return fd;
  high = fcntl(fd, F_DUPFD_CLOEXEC, OWN_FD_MIN);
  if (high < 0) die("move descriptor %d above %d", fd, OWN_FD_MIN);
  close(fd);
  return high;
}

static void high_pipe(int p[2]) {
  if (pipe2(p, O_CLOEXEC) < 0) die("pipe");
  p[0] = lift(p[0]);
  p[1] = lift(p[1]);
}

static void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) < 0 && errno == EINTR) {
  }
}

/* ---- the log relay ------------------------------------------------------- */

/*
 * With --log-limit, what QEMU writes to its stdout and stderr, and to the
 * serial console's log (--console-log FILE, which QEMU gets as the pipe at
 * fd --console-fd), goes through a small process that appends it to the
 * files, because both are the guest's to fill: the console is whatever the
 * guest prints (~300 KB/s under TCG, a GB an hour), and QEMU prints a line
 * per virtio error after each device reset or per free page report a
 * forked VM's sealed RAM refuses. Written straight to the files, a guest
 * could fill the host's disk.
 *
 * - QEMU's log keeps its first BYTES; past them the relay keeps reading (QEMU
 *   never blocks on it) but keeps only the last RELAY_TAIL bytes, appended
 *   with a note once every writer is gone, so the file ends with why QEMU
 *   ended.
 * - The console log is rotated, as a container's log is: when FILE holds
 *   BYTES it becomes FILE.1 (replacing the older one) and a new FILE starts,
 *   so what is kept is always the latest output.
 * A file already at the limit (earlier starts of the VM) is moved to FILE.1
 * first. Either way a VM's logs take at most twice the limit each.
 */
#define RELAY_TAIL 16384

static int console_fd = -1;

static void write_all(int fd, const char *buf, size_t len) {
  while (len > 0) {
    ssize_t n = write(fd, buf, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    buf += n;
    len -= (size_t)n;
  }
}

/* FILE -> FILE.1, and a new FILE: its descriptor, or -1. */
static int rotate(const char *path) {
  char old[4096];
  snprintf(old, sizeof old, "%s.1", path);
  if (rename(path, old) < 0) return -1;
  return open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW | O_EXCL, 0600);
}

/* Open FILE for appending, moved aside first when it is at `limit` already; its size in *size. */
static int open_log(const char *path, long long limit, long long *size) {
  struct stat st;
  int fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) die("open %s", path);
  if (fstat(fd, &st) < 0) die("stat %s", path);
  *size = st.st_size;
  if (st.st_size >= limit) {
    close(fd);
    fd = rotate(path);
    if (fd < 0) die("move %s aside", path);
    *size = 0;
  }
  return fd;
}

struct head_and_tail {
  long long room;
  long long past;
  size_t kept;
  char tail[RELAY_TAIL];
};

static void keep_head_and_tail(struct head_and_tail *h, int out, const char *buf, size_t n) {
  size_t off = 0, rest;
  if (h->room > 0) {
    off = (long long)n < h->room ? n : (size_t)h->room;
    write_all(out, buf, off);
    h->room -= (long long)off;
    if (h->room == 0) {
      char note[200];
      snprintf(note, sizeof note, "\nskiff-jail: the log reached its limit; QEMU's further output is dropped but for its last %d bytes, written when it ends\n", RELAY_TAIL);
      write_all(out, note, strlen(note));
    }
  }
  rest = n - off;
  h->past += (long long)rest;
  if (rest >= RELAY_TAIL) {
    memcpy(h->tail, buf + n - RELAY_TAIL, RELAY_TAIL);
    h->kept = RELAY_TAIL;
  } else if (rest > 0) {
    if (h->kept + rest > RELAY_TAIL) {
      memmove(h->tail, h->tail + (h->kept + rest - RELAY_TAIL), RELAY_TAIL - rest);
      h->kept = RELAY_TAIL - rest;
    }
    memcpy(h->tail + h->kept, buf + off, rest);
    h->kept += rest;
  }
}

static void write_tail(struct head_and_tail *h, int out) {
  char note[200];
  if (h->past == 0) return;
  snprintf(note, sizeof note, "skiff-jail: %lld bytes of QEMU's output dropped; its last %zu bytes:\n", h->past - (long long)h->kept, h->kept);
  write_all(out, note, strlen(note));
  write_all(out, h->tail, h->kept);
}

/* fd 0 -> fd 1 (QEMU's output), and with a console, fd 3 -> fd 4 (rotated at the limit), until both end. */
static void relay(long long log_room, long long console_size) {
  static char buf[65536];
  static struct head_and_tail log;
  struct pollfd fds[2];
  int console_out = 4;
  log.room = log_room;
  fds[0].fd = 0;
  fds[0].events = POLLIN;
  fds[1].fd = jail.console_log != NULL ? 3 : -1;
  fds[1].events = POLLIN;
  while (fds[0].fd >= 0 || fds[1].fd >= 0) {
    int i;
    if (poll(fds, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    for (i = 0; i < 2; i++) {
      ssize_t n;
      size_t off = 0;
      if (fds[i].fd < 0 || fds[i].revents == 0) continue;
      n = read(fds[i].fd, buf, sizeof buf);
      if (n < 0 && (errno == EINTR || errno == EAGAIN)) continue;
      if (n <= 0) {
        fds[i].fd = -1;
        continue;
      }
      if (i == 0) {
        keep_head_and_tail(&log, 1, buf, (size_t)n);
        continue;
      }
      while (off < (size_t)n && console_out >= 0) {
        long long space = jail.log_limit - console_size;
        size_t w;
        if (space <= 0) {
          int fd = rotate(jail.console_log);
          /* Cannot rotate: drop the rest rather than grow past the limit. */
          if (fd < 0 || dup2(fd, 4) < 0) console_out = -1;
          if (fd >= 0) close(fd);
          console_size = 0;
          continue;
        }
        w = (size_t)n - off < (unsigned long long)space ? (size_t)n - off : (size_t)space;
        write_all(console_out, buf + off, w);
        console_size += (long long)w;
        off += w;
      }
    }
  }
  write_tail(&log, 1);
}

/* The relay holds nothing but its descriptors, no capabilities, and a name of its own (it is no VM's process). */
static void become_relay(int log_in, int log_out, int console_in, int console_out, long long log_room, long long console_size) {
  int cap;
  size_t len;
  /* Out of the way first, so that placing one cannot close another. */
  int hi[4] = {fcntl(log_in, F_DUPFD, 200), fcntl(log_out, F_DUPFD, 200), console_in < 0 ? -1 : fcntl(console_in, F_DUPFD, 200),
               console_out < 0 ? -1 : fcntl(console_out, F_DUPFD, 200)};
  if (setsid() < 0 || hi[0] < 0 || hi[1] < 0 || (console_in >= 0 && (hi[2] < 0 || hi[3] < 0))) _exit(JAIL_FAIL);
  if (dup2(hi[0], 0) < 0 || dup2(hi[1], 1) < 0) _exit(JAIL_FAIL);
  if (console_in >= 0 && (dup2(hi[2], 3) < 0 || dup2(hi[3], 4) < 0)) _exit(JAIL_FAIL);
  close(2);
  if (syscall(SYS_close_range, console_in >= 0 ? 5 : 3, ~0U, 0) < 0) _exit(JAIL_FAIL);
  if (geteuid() == 0) {
    struct __user_cap_header_struct hdr = {_LINUX_CAPABILITY_VERSION_3, 0};
    struct __user_cap_data_struct data[2];
    memset(data, 0, sizeof data);
    for (cap = 0; cap <= 63; cap++) prctl(PR_CAPBSET_DROP, cap, 0, 0, 0);
    if (syscall(SYS_capset, &hdr, data) < 0) _exit(JAIL_FAIL);
  }
  if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0 || prctl(PR_SET_DUMPABLE, 0, 0, 0, 0) < 0) _exit(JAIL_FAIL);
  /* Its argv is the jailer's, QEMU's command line and VM paths included: cleared, so nothing takes it for the VM's. */
  prctl(PR_SET_NAME, "skiff-jail-log", 0, 0, 0);
  len = (size_t)(jail.argv_end - jail.argv_start);
  if (len > sizeof "skiff-jail-log") {
    /* The console's path is read from argv: kept aside first. */
    static char console_path[4096];
    if (jail.console_log != NULL) {
      snprintf(console_path, sizeof console_path, "%s", jail.console_log);
      jail.console_log = console_path;
    }
    memset(jail.argv_start, 0, len);
    memcpy(jail.argv_start, "skiff-jail-log", sizeof "skiff-jail-log");
  }
  relay(log_room, console_size);
  _exit(0);
}

static void open_stdio(void) {
  int file, pipefd[2], console_file = -1, console_pipe[2] = {-1, -1};
  long long size = 0, console_size = 0;
  null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
  if (null_fd < 0) die("open /dev/null");
  null_fd = lift(null_fd);
  if (jail.log_limit == 0) {
    log_fd = open(jail.log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
    if (log_fd < 0) die("open %s", jail.log);
    log_fd = lift(log_fd);
    return;
  }
  file = open_log(jail.log, jail.log_limit, &size);
  if (jail.console_log != NULL) {
    console_file = open_log(jail.console_log, jail.log_limit, &console_size);
    if (pipe2(console_pipe, O_CLOEXEC) < 0) die("pipe");
    /* QEMU opens it again by /proc/self/fd/N, which checks the pipe's owner and mode: the jail user's. */
    if (jail.has_ids == 3 && fchown(console_pipe[1], jail.uid, jail.gid) < 0) die("chown the console pipe");
  }
  if (pipe2(pipefd, O_CLOEXEC) < 0) die("pipe");
  /* A relay gone (killed) must not kill QEMU with it: writes fail instead. Kept across exec. */
  signal(SIGPIPE, SIG_IGN);
  relay_pid = fork();
  if (relay_pid < 0) die("fork");
  if (relay_pid == 0) {
    signal(SIGPIPE, SIG_DFL);
    /*
     * In the VM's cgroups, as QEMU will be: the work a guest makes it do is the VM's, and it lives as long as
     * the VM's QEMU does, not as long as the session or service that started the VM.
     */
    if (!jail.rootless && !jail.unjailed) join_cgroups();
    become_relay(pipefd[0], file, console_pipe[0], console_file, jail.log_limit - size, console_size);
  }
  close(pipefd[0]);
  close(file);
  log_fd = lift(pipefd[1]);
  if (jail.console_log != NULL) {
    close(console_pipe[0]);
    close(console_file);
    console_fd = lift(console_pipe[1]);
  }
}

/*
 * A start that failed: once every writer but this process is gone, let the
 * relay write the rest, so that the log's tail is all of what QEMU said.
 */
static void flush_relay(void) {
  long waited = 0;
  if (relay_pid <= 0) return;
  close(log_fd);
  log_fd = -1;
  if (console_fd >= 0) close(console_fd);
  console_fd = -1;
  while (waited < 2000 && waitpid(relay_pid, NULL, WNOHANG) == 0) {
    sleep_ms(5);
    waited += 5;
  }
}

/*
 * In a child: everything up to exec. Failures go to `report` (a pipe the
 * parent reads), which closes by itself (O_CLOEXEC) when exec succeeds.
 */
static void become_qemu(int report) {
  static char *const env[] = {"PATH=/usr/bin:/bin", NULL};
  int i;
  errfd = report;
  if (!jail.rootless) {
    join_cgroups();
    open_taps();
  }
  if (!jail.unjailed) {
    enter_mount_namespace();
    drop_privileges();
  }
  place_taps();
  if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) die("dup2 stdio");
  /* The console log's pipe, where QEMU's argv says (logfile=/proc/self/fd/N). */
  if (console_fd >= 0 && console_fd != jail.console_fd && dup2(console_fd, jail.console_fd) < 0) die("dup2 console fd");
  /* QEMU gets stdio, its TAPs and its shared RAM; every other descriptor closes at exec. */
  if (syscall(SYS_close_range, 3, ~0U, CLOSE_RANGE_CLOEXEC) < 0) die("close_range");
  for (i = 0; i < jail.ntaps; i++) {
    if (fcntl(-jail.taps[i].fd, F_SETFD, 0) < 0) die("keep TAP fd");
  }
  if (jail.ram_fd != 0 && fcntl(jail.ram_fd, F_SETFD, 0) < 0) die("keep RAM fd");
  if (console_fd >= 0 && fcntl(jail.console_fd, F_SETFD, 0) < 0) die("keep console fd");
  umask(007);
  execve(jail.argv[0], jail.argv, env);
  die("exec %s", jail.argv[0]);
}

/* Start a jailed QEMU; returns its pid once it has exec'ed, or dies with the child's complaint. */
static pid_t start_qemu(void) {
  int report[2];
  char msg[1024];
  ssize_t n;
  pid_t pid;
  high_pipe(report);
  pid = fork();
  if (pid < 0) die("fork");
  if (pid == 0) {
    close(report[0]);
    become_qemu(report[1]);
  }
  close(report[1]);
  n = read(report[0], msg, sizeof msg - 1);
  close(report[0]);
  if (n > 0) {
    msg[n] = '\0';
    waitpid(pid, NULL, 0);
    errno = 0;
    /* Already "skiff-jail: …": pass it on as it is. */
    dprintf(errfd, "%s", msg);
    _exit(JAIL_FAIL);
  }
  return pid;
}

static int socket_answers(const char *path) {
  struct sockaddr_un addr;
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
  int ok;
  if (fd < 0) return 0;
  memset(&addr, 0, sizeof addr);
  addr.sun_family = AF_UNIX;
  snprintf(addr.sun_path, sizeof addr.sun_path, "%s", path);
  ok = connect(fd, (struct sockaddr *)&addr, sizeof addr) == 0;
  close(fd);
  return ok;
}

/* The last lines of QEMU's log, for a start that failed. */
static void print_log_tail(void) {
  char buf[4096];
  off_t size;
  ssize_t n;
  int fd = open(jail.log, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return;
  size = lseek(fd, 0, SEEK_END);
  lseek(fd, size > (off_t)sizeof buf ? size - (off_t)sizeof buf : 0, SEEK_SET);
  n = read(fd, buf, sizeof buf);
  if (n > 0) {
    if (write(2, buf, (size_t)n) < 0) {
    }
  }
  close(fd);
}

static int exit_status_of(int status) {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
  return JAIL_FAIL;
}

/* ---- the supervisor ------------------------------------------------------ */

static volatile sig_atomic_t stopping = 0;

static void on_stop(int sig) {
  (void)sig;
  stopping = 1;
}

static void record(const char *fmt, ...) {
  char line[512];
  va_list ap;
  int fd = open(jail.status, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC | O_NOFOLLOW, 0600);
  if (fd < 0) return;
  va_start(ap, fmt);
  vsnprintf(line, sizeof line, fmt, ap);
  va_end(ap);
  if (write(fd, line, strlen(line)) < 0) {
  }
  close(fd);
}

/*
 * Stay as QEMU's parent: when it ends, start it again as the policy says
 * (on-failure: it died by a signal or exited non-zero; always: any end),
 * unless skiff asked to stop (SIGTERM). Backoff 1, 2, 4 … 30 s, back to 1 s
 * after a run of 10 s or more, as Docker does.
 */
/* A restart is a cold boot: QEMU's last --first-only arguments (a restore's -incoming) were for the first start only. */
static void drop_first_only(void) {
  int n = 0;
  if (jail.first_only == 0) return;
  while (jail.argv[n] != NULL) n++;
  jail.argv[n - jail.first_only] = NULL;
  jail.first_only = 0;
}

static void supervise(pid_t first) {
  struct sigaction sa;
  pid_t pid = first;
  long backoff = 1000;
  memset(&sa, 0, sizeof sa);
  sa.sa_handler = on_stop;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  signal(SIGHUP, SIG_IGN);
  for (;;) {
    int status;
    time_t started = time(NULL);
    int code;
    record("start %d %ld\n", (int)pid, (long)started);
    while (waitpid(pid, &status, 0) < 0) {
      if (errno != EINTR) _exit(JAIL_FAIL);
    }
    code = exit_status_of(status);
    record("exit %d %d %ld\n", (int)pid, code, (long)time(NULL));
    if (stopping) _exit(0);
    if (strcmp(jail.supervise, "on-failure") == 0 && code == 0) _exit(0);
    if (time(NULL) - started >= 10) backoff = 1000;
    {
      long waited = 0;
      while (waited < backoff && !stopping) {
        sleep_ms(100);
        waited += 100;
      }
    }
    if (stopping) _exit(0);
    backoff = backoff * 2 > 30000 ? 30000 : backoff * 2;
    drop_first_only();
    pid = start_qemu();
  }
}

/* Until QEMU accepts connections on its socket: it has bound every socket by then. */
static int wait_until_listening(pid_t child, pid_t qemu) {
  long waited = 0;
  for (;;) {
    int status;
    if (socket_answers(jail.wait_socket)) return 0;
    if (qemu == child ? waitpid(child, &status, WNOHANG) == child : kill(qemu, 0) < 0) {
      if (qemu != child) kill(child, SIGTERM); /* no restarts of a VM that never came up */
      flush_relay();
      print_log_tail();
      return qemu == child ? exit_status_of(status) : JAIL_FAIL;
    }
    if (waited >= 60000) {
      kill(qemu, SIGKILL);
      if (qemu != child) kill(child, SIGTERM);
      errno = 0;
      die("QEMU did not open %s within 60 s", jail.wait_socket);
    }
    sleep_ms(5);
    waited += 5;
  }
}

int main(int argc, char **argv) {
  int status_pipe[2];
  pid_t child, qemu;
  char msg[1024];
  ssize_t n;
  int code;
  parse(argc, argv);
  if (!jail.rootless && !jail.unjailed && geteuid() != 0) {
    errno = 0;
    die("needs root (or --rootless)");
  }
  if (jail.ram_fd != 0) check_ram_fd();
  open_stdio();
  /* In the foreground: this process becomes QEMU. */
  if (jail.wait_socket == NULL && jail.supervise == NULL) become_qemu(2);
  if (jail.wait_socket == NULL) usage("--supervise needs --wait");
  /*
   * Detach like -daemonize: a child in a session of its own becomes QEMU (or
   * its supervisor); this process reports QEMU's pid once its socket answers.
   */
  high_pipe(status_pipe);
  child = fork();
  if (child < 0) die("fork");
  if (child == 0) {
    close(status_pipe[0]);
    if (setsid() < 0) die("setsid");
    if (jail.supervise == NULL) become_qemu(status_pipe[1]);
    errfd = status_pipe[1];
    qemu = start_qemu();
    dprintf(status_pipe[1], "pid %d\n", (int)qemu);
    close(status_pipe[1]);
    errfd = log_fd;
    if (dup2(null_fd, 0) < 0 || dup2(log_fd, 1) < 0 || dup2(log_fd, 2) < 0) _exit(JAIL_FAIL);
    supervise(qemu);
  }
  close(status_pipe[1]);
  n = read(status_pipe[0], msg, sizeof msg - 1);
  close(status_pipe[0]);
  qemu = child;
  if (n > 0) {
    msg[n] = '\0';
    if (strncmp(msg, "pid ", 4) != 0) {
      waitpid(child, NULL, 0);
      dprintf(2, "%s", msg);
      return JAIL_FAIL;
    }
    qemu = (pid_t)atoi(msg + 4);
  }
  code = wait_until_listening(child, qemu);
  if (code != 0) return code;
  printf("%d\n", (int)qemu);
  return 0;
}
