/*
 * skiff-init: PID 1 of every skiff guest, and the small helpers around the
 * SSH agent. One static binary, several roles chosen by argv[0]:
 *
 *   init         PID 1: load modules, mount the image's root disk at /image,
 *                configure the guest, keep one relay per agent port alive,
 *                reap zombies, power off on request.
 *   skiff-relay  one per virtio-serial port: handshake with the host, then
 *                relay bytes between the port and `dropbear -i` over a
 *                socketpair (dropbear -i insists on a socket for stdin).
 *   skiff-shell  root's login shell in the agent world: every SSH command
 *                arrives here and is run chrooted into the image, as the
 *                requested user, with the requested env and working dir.
 *
 * Why the agent lives outside the image: the image is never modified, any
 * image (glibc, musl, no /etc/passwd, no shell) works, and dropbear always
 * sees skiff's own /etc/passwd and authorized_keys.
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <grp.h> /* setgroups */
#include <linux/input.h>
#include <poll.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h> /* strncasecmp */
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define IMAGE "/image"
#define TOOLS "/skiff"
#define MAX_PORTS 16
#define CONFIG_MAX 65536

/* Set from the config (`debug=1`): every message carries the guest's uptime, to see where a boot spends its time. */
static int debug_timing;

static void logmsg(const char *fmt, ...) {
  char buf[512];
  int n = 0;
  if (debug_timing) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    n = snprintf(buf, sizeof buf, "[%ld.%03ld] ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
  }
  va_list ap;
  va_start(ap, fmt);
  n += vsnprintf(buf + n, sizeof buf - 1 - n, fmt, ap);
  va_end(ap);
  if (n < 0) return;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!write(fd, "skiff: ", 7);
    (void)!write(fd, buf, n);
    close(fd);
  }
}

static int write_file(const char *path, const char *data, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  size_t len = strlen(data);
  int ok = write(fd, data, len) == (ssize_t)len;
  close(fd);
  return ok ? 0 : -1;
}

static char *read_file(const char *path, size_t *len_out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  char *buf = malloc(CONFIG_MAX + 1);
  size_t len = 0;
  ssize_t n;
  while (len < CONFIG_MAX && (n = read(fd, buf + len, CONFIG_MAX - len)) > 0) len += n;
  close(fd);
  buf[len] = 0;
  if (len_out) *len_out = len;
  return buf;
}

/* ---- config: key=value lines written by the host into /skiff/config ---- */

static char *config_text;

/* Value of the first line `key=...`, copied; NULL when absent. */
static char *config_get(const char *key) {
  if (!config_text) return NULL;
  size_t klen = strlen(key);
  for (char *line = config_text; line && *line;) {
    char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=')
      return strndup(line + klen + 1, len - klen - 1);
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

static int run(char *const argv[]) {
  pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

static void load_modules(const char *list_path) {
  char *list = read_file(list_path, NULL);
  if (!list) return;
  for (char *save = NULL, *path = strtok_r(list, "\n", &save); path; path = strtok_r(NULL, "\n", &save)) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      logmsg("module %s: %s", path, strerror(errno));
      continue;
    }
    if (syscall(SYS_finit_module, fd, "", 0) != 0 && errno != EEXIST)
      logmsg("module %s: %s", path, strerror(errno));
    else if (debug_timing)
      logmsg("loaded %s", path);
    close(fd);
  }
  free(list);
}

static int wait_for(const char *path, int ms) {
  struct stat st;
  for (int waited = 0; waited < ms; waited += 5) {
    if (stat(path, &st) == 0) return 0;
    usleep(5000);
  }
  return stat(path, &st);
}

static void mkdir_p(const char *path, mode_t mode) {
  char tmp[4096];
  snprintf(tmp, sizeof tmp, "%s", path);
  for (char *p = tmp + 1; *p; p++) {
    if (*p == '/') {
      *p = 0;
      mkdir(tmp, mode);
      *p = '/';
    }
  }
  mkdir(tmp, mode);
}

/* The image sees the usual kernel filesystems and, at /dev/.skiff, skiff's tools. */
static void mount_image_view(void) {
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

/* hostname, /etc/hosts and resolv.conf live on the VM's overlay, like cloud-init writes them. */
static void configure_names(void) {
  struct stat st;
  int have_etc = stat(IMAGE "/etc", &st) == 0;
  char *hostname = config_get("hostname");
  if (hostname) {
    sethostname(hostname, strlen(hostname));
    if (have_etc) {
      char buf[512];
      snprintf(buf, sizeof buf, "%s\n", hostname);
      write_file(IMAGE "/etc/hostname", buf, 0644);
    }
    free(hostname);
  }
  /* The host renders the whole /etc/hosts: this VM's names and every VM it shares a network with. */
  char *hosts = read_file("/skiff/hosts", NULL);
  if (hosts && have_etc) write_file(IMAGE "/etc/hosts", hosts, 0644);
  free(hosts);
  char *dns = config_get("dns"); /* space-separated nameservers */
  if (dns && have_etc) {
    char buf[512];
    size_t n = 0;
    for (char *save = NULL, *ns = strtok_r(dns, " ", &save); ns && n < sizeof buf - 64; ns = strtok_r(NULL, " ", &save))
      n += snprintf(buf + n, sizeof buf - n, "nameserver %s\n", ns);
    unlink(IMAGE "/etc/resolv.conf"); /* may be a dangling symlink to systemd-resolved */
    write_file(IMAGE "/etc/resolv.conf", buf, 0644);
  }
  free(dns);
}

#define MAX_NICS 16

/* The kernel's name for the interface with this MAC, or "" when it has not appeared (yet). */
static void iface_by_mac(const char *mac, char *out, size_t cap) {
  out[0] = 0;
  DIR *d = opendir("/sys/class/net");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
    char *addr = read_file(path, NULL);
    if (addr && strncasecmp(addr, mac, 17) == 0) snprintf(out, cap, "%s", e->d_name);
    free(addr);
    if (out[0]) break;
  }
  closedir(d);
}

static void ip(const char *a, const char *b, const char *c, const char *d, const char *e, const char *f, const char *g) {
  char *const argv[] = {TOOLS "/bin/busybox", "ip", (char *)a, (char *)b, (char *)c, (char *)d, (char *)e, (char *)f, (char *)g, NULL};
  int r = run(argv);
  if (r != 0) logmsg("ip %s %s %s %s %s: exit %d", a, b, c, d ? d : "", e ? e : "", r);
}

/*
 * Each NIC is `nic.N=MAC NAME ADDRESS/PREFIX` in the config. NICs are found
 * by MAC and renamed (through a temporary name, so eth1 and eth2 can swap)
 * to the names the host chose: user networking eth0, then the named
 * networks in order. Addresses are static: skiff handed them out.
 */
static void configure_network(void) {
  ip("link", "set", "lo", "up", NULL, NULL, NULL);
  struct { char mac[32], name[16], addr[64], cur[64]; } nics[MAX_NICS];
  int n = 0;
  for (; n < MAX_NICS; n++) {
    char key[16];
    snprintf(key, sizeof key, "nic.%d", n);
    char *v = config_get(key);
    if (!v) break;
    if (sscanf(v, "%31s %15s %63s", nics[n].mac, nics[n].name, nics[n].addr) != 3) {
      logmsg("bad %s: %s", key, v);
      free(v);
      break;
    }
    free(v);
  }
  int found = 0;
  for (int waited = 0; waited < 3000 && found < n; waited += 5) {
    found = 0;
    for (int i = 0; i < n; i++) {
      iface_by_mac(nics[i].mac, nics[i].cur, sizeof nics[i].cur);
      if (nics[i].cur[0]) found++;
    }
    if (found < n) usleep(5000);
  }
  for (int i = 0; i < n; i++) {
    if (!nics[i].cur[0]) {
      logmsg("no interface with MAC %s (%s)", nics[i].mac, nics[i].name);
      continue;
    }
    char tmp[16];
    snprintf(tmp, sizeof tmp, "sktmp%d", i);
    if (strcmp(nics[i].cur, nics[i].name) != 0) ip("link", "set", "dev", nics[i].cur, "name", tmp, NULL);
    else snprintf(tmp, sizeof tmp, "%s", nics[i].name);
    snprintf(nics[i].cur, sizeof nics[i].cur, "%s", tmp);
  }
  for (int i = 0; i < n; i++) {
    if (!nics[i].cur[0]) continue;
    if (strcmp(nics[i].cur, nics[i].name) != 0) ip("link", "set", "dev", nics[i].cur, "name", nics[i].name, NULL);
    ip("addr", "add", nics[i].addr, "dev", nics[i].name, NULL, NULL);
    ip("link", "set", nics[i].name, "up", NULL, NULL, NULL);
  }
  char *gw = config_get("gateway");
  if (gw) ip("route", "add", "default", "via", gw, NULL, NULL);
  free(gw);
}

/* ---- agent ports ---- */

struct port {
  char dev[64];
  pid_t relay;
};
static struct port ports[MAX_PORTS];
static int nports;

static int known_port(const char *dev) {
  for (int i = 0; i < nports; i++)
    if (strcmp(ports[i].dev, dev) == 0) return 1;
  return 0;
}

/* Add ports not seen before. They appear asynchronously: the host announces them after the driver loads. */
static void find_ports(void) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && nports < MAX_PORTS) {
    if (e->d_name[0] == '.') continue;
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/%s", e->d_name);
    if (known_port(dev)) continue;
    char path[256];
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
    char *name = read_file(path, NULL);
    struct stat st;
    if (name && strncmp(name, "skiff.agent.", 12) == 0 && stat(dev, &st) == 0) {
      snprintf(ports[nports].dev, sizeof ports[nports].dev, "%s", dev);
      ports[nports].relay = 0;
      nports++;
    }
    free(name);
  }
  closedir(d);
}

static pid_t spawn_relay(const char *dev) {
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    execl(TOOLS "/bin/skiff-init", "skiff-relay", dev, (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* ---- relay role ---- */

static volatile sig_atomic_t port_event;
static void on_sigio(int sig) { (void)sig; port_event = 1; }

/* Whether `fd` has bytes to read right now. */
static int readable_now(int fd) {
  struct pollfd p = {.fd = fd, .events = POLLIN};
  return poll(&p, 1, 0) > 0 && (p.revents & POLLIN);
}

/* Drop what is waiting on the port: bytes of a host that has gone. */
static void drop_input(int fd) {
  char buf[512];
  while (readable_now(fd) && read(fd, buf, sizeof buf) > 0) {
  }
}

/*
 * Read the host's "SKIFF-HELLO <nonce>" line, skipping stale bytes of an
 * older session. A host that gave up before its answer (a guest slowed
 * down by a busy host) leaves its HELLOs on the port: they are dropped when
 * it is seen gone, and of the HELLOs waiting at once the newest is
 * answered, so a stale nonce does not take the next host's session (it
 * would wait for its own answer while this end waits for SSH).
 *
 * Returns 1 when the waiting dropbear ended first (on the other end of
 * `sock`): it gives up on a client that does not authenticate within 5
 * minutes, so an idle port's dropbear ends every 5 minutes, and must be
 * reaped and replaced before the host comes (else it stays a zombie and the
 * host's next session on the port talks to nobody).
 */
static int await_hello(int fd, int sock, char *nonce, size_t cap) {
  char line[128];
  size_t len = 0;
  int have = 0;
  for (;;) {
    if (have && len == 0 && !readable_now(fd)) return 0;
    /* Only hang-ups of `sock`: dropbear's greeting waits there for the host. */
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = sock, .events = 0}};
    int r = poll(p, 2, 1000);
    if (r < 0 && errno != EINTR) return -1;
    if (r <= 0) continue;
    if (p[1].revents & (POLLHUP | POLLERR)) return 1;
    if (p[0].revents & POLLHUP) {
      /* No host on the other end: forget its bytes, wait for the next (SIGIO, or poll again shortly). */
      len = 0;
      have = 0;
      drop_input(fd);
      struct timespec ts = {0, 50 * 1000 * 1000};
      nanosleep(&ts, NULL);
      continue;
    }
    char c;
    ssize_t n = read(fd, &c, 1);
    if (n <= 0) continue;
    if (c == '\n') {
      line[len] = 0;
      len = 0;
      if (strncmp(line, "SKIFF-HELLO ", 12) == 0) {
        snprintf(nonce, cap, "%s", line + 12);
        have = 1;
      }
    } else if (len < sizeof line - 1) {
      line[len++] = c;
    }
  }
}

/*
 * dropbear is started before the host says HELLO, so its start-up (dynamic
 * linking, key loading: slow under TCG) is not on the path of a connect.
 */
static pid_t start_dropbear(int *sock_out) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    dup2(sv[1], 0);
    dup2(sv[1], 1);
    /* dropbear logs to syslog in inetd mode; only its fatal start-up errors reach the console. */
    int con = open("/dev/console", O_WRONLY | O_NOCTTY);
    if (con >= 0) dup2(con, 2);
    setsid();
    execl(TOOLS "/bin/dropbear", "dropbear", "-i", "-s", "-r", TOOLS "/etc/ssh_host_ed25519_key", "-W", "1048576",
          (char *)NULL);
    _exit(127);
  }
  close(sv[1]);
  *sock_out = sv[0];
  return pid;
}

static int relay_session(int port, pid_t pid, int sock) {
  char buf[65536];
  char pre[128];
  size_t pre_len = 0;
  int preamble = 1;
  for (;;) {
    struct pollfd p[2] = {{.fd = port, .events = POLLIN}, {.fd = sock, .events = POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & POLLHUP) break; /* host went away: end the session */
    if (p[0].revents & POLLIN) {
      ssize_t n = read(port, buf, sizeof buf);
      if (n <= 0) break;
      ssize_t start = 0;
      if (preamble) {
        /*
         * The host repeats its HELLO until it sees READY, so copies may
         * follow the one we answered. Drop whole HELLO lines until the
         * client's SSH identification line starts.
         */
        while (start < n && preamble) {
          if (pre_len == 0 && buf[start] != 'S') { preamble = 0; break; }
          char c = buf[start++];
          if (pre_len < sizeof pre - 1) pre[pre_len++] = c;
          if (pre_len <= 12 && strncmp(pre, "SKIFF-HELLO ", pre_len) != 0) {
            /* Not a HELLO: it is the start of SSH; pass on what we held back. */
            preamble = 0;
            if (write(sock, pre, pre_len) != (ssize_t)pre_len) goto done;
            break;
          }
          if (c == '\n') pre_len = 0;
        }
      }
      for (ssize_t off = start; off < n;) {
        ssize_t w = write(sock, buf + off, n - off);
        if (w <= 0) goto done;
        off += w;
      }
    }
    if (p[1].revents & (POLLIN | POLLHUP)) {
      ssize_t n = read(sock, buf, sizeof buf);
      if (n <= 0) break;
      for (ssize_t off = 0; off < n;) {
        ssize_t w = write(port, buf + off, n - off);
        if (w < 0 && errno == EINTR) continue;
        if (w <= 0) goto done;
        off += w;
      }
    }
  }
done:
  close(sock);
  /* Hang up the session's processes, then make sure dropbear is gone before the next one. */
  kill(-pid, SIGHUP);
  kill(pid, SIGTERM);
  for (int i = 0; i < 10 && waitpid(pid, NULL, WNOHANG) == 0; i++) usleep(5000);
  kill(-pid, SIGKILL);
  waitpid(pid, NULL, 0);
  return 0;
}

static int relay_main(const char *dev) {
  signal(SIGIO, on_sigio);
  signal(SIGPIPE, SIG_IGN);
  signal(SIGCHLD, SIG_DFL);
  int fd = open(dev, O_RDWR | O_CLOEXEC);
  if (fd < 0) {
    logmsg("relay %s: %s", dev, strerror(errno));
    sleep(1);
    return 1;
  }
  fcntl(fd, F_SETOWN, getpid());
  fcntl(fd, F_SETFL, fcntl(fd, F_GETFL) | O_ASYNC);
  for (;;) {
    int sock = -1;
    pid_t pid = start_dropbear(&sock);
    if (pid < 0) return 1;
    char nonce[96];
    int waited = await_hello(fd, sock, nonce, sizeof nonce);
    if (waited != 0) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      close(sock);
      if (waited < 0) return 1;
      continue;
    }
    char ready[128];
    int n = snprintf(ready, sizeof ready, "SKIFF-READY %s\n", nonce);
    if (write(fd, ready, n) != n) {
      kill(pid, SIGKILL);
      waitpid(pid, NULL, 0);
      close(sock);
      continue;
    }
    relay_session(fd, pid, sock);
  }
}

/* ---- shell role: run one SSH command inside the image ---- */

static int b64val(int c) {
  if (c >= 'A' && c <= 'Z') return c - 'A';
  if (c >= 'a' && c <= 'z') return c - 'a' + 26;
  if (c >= '0' && c <= '9') return c - '0' + 52;
  if (c == '+' || c == '-') return 62;
  if (c == '/' || c == '_') return 63;
  return -1;
}

static size_t b64decode(const char *in, char *out) {
  size_t n = 0;
  int bits = 0, acc = 0;
  for (; *in; in++) {
    int v = b64val((unsigned char)*in);
    if (v < 0) continue;
    acc = (acc << 6) | v;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[n++] = (char)((acc >> bits) & 0xff);
    }
  }
  return n;
}

struct request {
  const char *user, *cwd, *pidfile;
  char *env[256];
  int nenv;
  char *argv[1024];
  int argc;
};

/* A request is NUL-separated records "u=USER", "w=DIR", "e=K=V", "p=PIDFILE", "a=ARG". */
static void parse_request(char *data, size_t len, struct request *req) {
  for (size_t i = 0; i < len;) {
    char *rec = data + i;
    size_t rlen = strnlen(rec, len - i);
    if (rlen >= 2 && rec[1] == '=') {
      char *v = rec + 2;
      switch (rec[0]) {
      case 'u': req->user = v; break;
      case 'w': req->cwd = v; break;
      case 'p': req->pidfile = v; break;
      case 'e': if (req->nenv < 255) req->env[req->nenv++] = v; break;
      case 'a': if (req->argc < 1023) req->argv[req->argc++] = v; break;
      }
    }
    i += rlen + 1;
  }
  req->env[req->nenv] = NULL;
  req->argv[req->argc] = NULL;
}

/*
 * Users and groups come from the image's own /etc/passwd and /etc/group,
 * parsed here: glibc's NSS cannot be used from a static binary in a foreign
 * root.
 */
static int group_lookup(const char *name, gid_t *gid) {
  FILE *f = fopen("/etc/group", "re");
  char line[4096];
  int found = 0;
  while (f && !found && fgets(line, sizeof line, f)) {
    char *sep1 = strchr(line, ':');
    if (!sep1) continue;
    *sep1 = 0;
    char *sep2 = strchr(sep1 + 1, ':');
    if (sep2 && strcmp(line, name) == 0) {
      *gid = (gid_t)atol(sep2 + 1);
      found = 1;
    }
  }
  if (f) fclose(f);
  return found ? 0 : -1;
}

/* Supplementary groups: every group of /etc/group listing the user as a member. */
static void set_groups(const char *user, gid_t primary) {
  gid_t groups[64];
  int n = 0;
  groups[n++] = primary;
  FILE *f = fopen("/etc/group", "re");
  char line[4096];
  while (f && n < 64 && fgets(line, sizeof line, f)) {
    line[strcspn(line, "\n")] = 0;
    char *fields[4] = {0};
    char *p = line;
    for (int i = 0; i < 4 && p; i++) {
      fields[i] = p;
      p = strchr(p, ':');
      if (p) *p++ = 0;
    }
    if (!fields[3]) continue;
    for (char *save = NULL, *m = strtok_r(fields[3], ",", &save); m; m = strtok_r(NULL, ",", &save))
      if (strcmp(m, user) == 0) groups[n++] = (gid_t)atol(fields[2]);
  }
  if (f) fclose(f);
  setgroups(n, groups);
}

static int resolve_user(const char *spec, uid_t *uid, gid_t *gid, char *home, size_t hcap, char *shell, size_t scap,
                        char *name, size_t ncap) {
  *uid = 0;
  *gid = 0;
  snprintf(home, hcap, "/root");
  snprintf(shell, scap, "/bin/sh");
  snprintf(name, ncap, "root");
  if (!spec || !*spec) spec = "root";
  char user[128], group[128] = "";
  snprintf(user, sizeof user, "%s", spec);
  char *colon = strchr(user, ':');
  if (colon) {
    *colon = 0;
    snprintf(group, sizeof group, "%s", colon + 1);
  }
  int found = 0;
  FILE *f = fopen("/etc/passwd", "re");
  char line[1024];
  char *end;
  long numeric = strtol(user, &end, 10);
  int is_num = *user && *end == 0;
  while (f && fgets(line, sizeof line, f)) {
    char *fields[7] = {0};
    char *p = line;
    for (int i = 0; i < 7 && p; i++) {
      fields[i] = p;
      p = strchr(p, ':');
      if (p) *p++ = 0;
    }
    if (!fields[6]) continue;
    fields[6][strcspn(fields[6], "\n")] = 0;
    if ((is_num && atol(fields[2]) == numeric) || (!is_num && strcmp(fields[0], user) == 0)) {
      *uid = (uid_t)atol(fields[2]);
      *gid = (gid_t)atol(fields[3]);
      snprintf(name, ncap, "%s", fields[0]);
      snprintf(home, hcap, "%s", fields[5]);
      if (*fields[6]) snprintf(shell, scap, "%s", fields[6]);
      found = 1;
      break;
    }
  }
  if (f) fclose(f);
  if (!found) {
    if (!is_num && strcmp(user, "root") != 0) return -1;
    *uid = (uid_t)(is_num ? numeric : 0);
    *gid = *uid;
    snprintf(name, ncap, "%s", user);
    if (*uid != 0) snprintf(home, hcap, "/");
  }
  if (*group) {
    long g = strtol(group, &end, 10);
    if (*end == 0) {
      *gid = (gid_t)g;
    } else {
      if (group_lookup(group, gid) != 0) return -2;
    }
  }
  return 0;
}

static const char *default_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

static int exec_in_image(struct request *req, const char *command, int sftp);

static int shell_main(int argc, char **argv) {
  const char *command = NULL;
  if (argc >= 3 && strcmp(argv[1], "-c") == 0) command = argv[2];

  struct request req = {0};
  static char payload[CONFIG_MAX];
  int sftp = 0;
  if (command && strncmp(command, "skiff-exec:", 11) == 0) {
    size_t n = b64decode(command + 11, payload);
    parse_request(payload, n, &req);
  } else if (command && strcmp(command, "/usr/lib/sftp-server") == 0) {
    sftp = 1;
  }
  return exec_in_image(&req, command, sftp);
}

/*
 * Enter the image as the request says (root into /image, its user, env and
 * working directory) and exec: the request's argv, sftp-server, `sh -c
 * command`, or a login shell. Shared by SSH commands and the services init
 * starts itself. Returns only on failure, with the exit status to use.
 */
static int exec_in_image(struct request *req_in, const char *command, int sftp) {
  struct request req = *req_in;

  /*
   * The agent answers before the network is configured (that overlaps with
   * the SSH handshake); commands wait for it, so they never see a half-set-up
   * guest.
   */
  struct stat ready_st;
  for (int i = 0; i < 1000 && stat("/dev/.skiff-run/configured", &ready_st) != 0; i++) usleep(5000);

  /* Env every command gets: the VM's (-e at run/create), then the request's. */
  char *vm_env = read_file(TOOLS "/env", NULL);
  const char *term = getenv("TERM");
  char termbuf[128] = "";
  if (term) snprintf(termbuf, sizeof termbuf, "TERM=%s", term);

  if (chroot(IMAGE) != 0 || chdir("/") != 0) {
    fprintf(stderr, "skiff: cannot enter the image root: %s\n", strerror(errno));
    return 126;
  }

  uid_t uid;
  gid_t gid;
  char home[512], shell[512], name[128];
  int r = resolve_user(req.user, &uid, &gid, home, sizeof home, shell, sizeof shell, name, sizeof name);
  if (r != 0) {
    fprintf(stderr, "skiff: unable to find user %s: no matching entries in passwd file\n", req.user);
    return 126;
  }

  clearenv();
  setenv("PATH", default_path, 1);
  setenv("HOME", home, 1);
  setenv("USER", name, 1);
  setenv("LOGNAME", name, 1);
  char hostname[256] = "";
  gethostname(hostname, sizeof hostname - 1);
  setenv("HOSTNAME", hostname, 1);
  if (*termbuf) putenv(strdup(termbuf));
  if (vm_env) {
    for (char *save = NULL, *kv = strtok_r(vm_env, "\n", &save); kv; kv = strtok_r(NULL, "\n", &save))
      if (strchr(kv, '=')) putenv(kv);
  }
  for (int i = 0; i < req.nenv; i++) putenv(req.env[i]);

  if (req.pidfile) {
    /* Lets the host signal this command from another channel. */
    char pidbuf[32];
    snprintf(pidbuf, sizeof pidbuf, "%d\n", getpid());
    char path[256];
    snprintf(path, sizeof path, "/dev/.skiff-run/%s", req.pidfile);
    write_file(path, pidbuf, 0600);
  }

  if (uid != 0 || gid != 0) {
    set_groups(name, gid);
    if (setgid(gid) != 0 || setuid(uid) != 0) {
      fprintf(stderr, "skiff: cannot switch to user %s: %s\n", name, strerror(errno));
      return 126;
    }
  }

  const char *cwd = req.cwd ? req.cwd : home;
  if (chdir(cwd) != 0) {
    if (req.cwd) {
      fprintf(stderr, "skiff: cannot change to working directory %s: %s\n", req.cwd, strerror(errno));
      return 126;
    }
    chdir("/");
  }

  struct stat st;
  if (stat(shell, &st) != 0) snprintf(shell, sizeof shell, "%s", stat("/bin/sh", &st) == 0 ? "/bin/sh" : "/dev/.skiff/bin/sh");
  setenv("SHELL", shell, 1);

  if (sftp) {
    execl("/dev/.skiff/lib/ld-linux-x86-64.so.2", "sftp-server", "--library-path", "/dev/.skiff/lib",
          "/dev/.skiff/bin/sftp-server", (char *)NULL);
    fprintf(stderr, "skiff: sftp-server: %s\n", strerror(errno));
    return 127;
  }
  if (req.argc > 0) {
    execvp(req.argv[0], req.argv);
    int err = errno;
    fprintf(stderr, "skiff: %s: %s\n", req.argv[0], err == ENOENT ? "command not found" : strerror(err));
    return err == ENOENT ? 127 : 126;
  }
  if (command) {
    execl(shell, shell, "-c", command, (char *)NULL);
  } else {
    /* Interactive login: a login shell, argv[0] prefixed with '-'. */
    const char *base = strrchr(shell, '/');
    char arg0[256];
    snprintf(arg0, sizeof arg0, "-%s", base ? base + 1 : shell);
    execl(shell, arg0, (char *)NULL);
  }
  fprintf(stderr, "skiff: %s: %s\n", shell, strerror(errno));
  return 127;
}

/* A background program's stdio: no input, output on the serial console (so `skiff logs` shows it). */
static void stdio_to_console(void) {
  int in = open("/dev/null", O_RDONLY);
  int out = open("/dev/console", O_WRONLY | O_NOCTTY);
  if (in >= 0) dup2(in, 0);
  if (out >= 0) {
    dup2(out, 1);
    dup2(out, 2);
  }
  if (in > 2) close(in);
  if (out > 2) close(out);
}

/* ---- kill role: `skiff-kill PIDFILE SIGNAL`, used by the host for Ctrl-C without a PTY ---- */

static int kill_main(int argc, char **argv) {
  if (argc < 3) return 2;
  char path[256];
  snprintf(path, sizeof path, "/dev/.skiff-run/%s", argv[1]);
  char *text = read_file(path, NULL);
  if (!text) return 1;
  pid_t pid = (pid_t)atoi(text);
  free(text);
  if (pid <= 1) return 1;
  return kill(pid, atoi(argv[2])) == 0 ? 0 : 1;
}

/*
 * ---- detach role: `skiff-detach CMD ARGS...`, the main command of `run -d`.
 * Runs CMD in a session of its own, stdio on the serial console (so `skiff
 * logs` shows its output), and returns only once CMD was exec'd: 0, or 127
 * when it could not be. The pipe closes on exec (CLOEXEC), which tells the
 * parent the child is safely detached before its SSH session ends.
 */
static int detach_main(int argc, char **argv) {
  if (argc < 2) return 2;
  int pipefd[2];
  if (pipe2(pipefd, O_CLOEXEC) != 0) return 126;
  pid_t pid = fork();
  if (pid < 0) return 126;
  if (pid == 0) {
    close(pipefd[0]);
    setsid();
    stdio_to_console();
    execvp(argv[1], argv + 1);
    int err = errno;
    (void)!write(pipefd[1], &err, sizeof err);
    _exit(127);
  }
  close(pipefd[1]);
  int err = 0;
  ssize_t n = read(pipefd[0], &err, sizeof err);
  if (n == sizeof err) {
    fprintf(stderr, "skiff: %s: %s\n", argv[1], err == ENOENT ? "command not found" : strerror(err));
    return err == ENOENT ? 127 : 126;
  }
  printf("%d\n", pid);
  return 0;
}

/*
 * A root shell on the serial console, so `skiff console` gives a prompt
 * even when the agent is broken. Respawned when it exits.
 */
static pid_t spawn_console_shell(void) {
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    setsid();
    int fd = open("/dev/ttyS0", O_RDWR);
    if (fd < 0) _exit(1);
    ioctl(fd, TIOCSCTTY, 1);
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
    setenv("TERM", "vt100", 1);
    execl(TOOLS "/bin/skiff-init", "-skiff-shell", (char *)NULL);
    _exit(127);
  }
  return pid;
}

/* ---- disks by serial, and the VM's mounts ---- */

static void power_off(void);

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

static int wait_for_disk(const char *serial, char *out, size_t cap, int ms) {
  for (int waited = 0; waited < ms; waited += 5) {
    disk_by_serial(serial, out, cap);
    if (out[0]) return 0;
    usleep(5000);
  }
  return -1;
}

#define MAX_MOUNTS 16
static char mounted[MAX_MOUNTS][512]; /* targets inside the image, unmounted in reverse at power-off */
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
static void mount_volumes(void) {
  for (int i = 0; i < MAX_MOUNTS; i++) {
    char key[16];
    snprintf(key, sizeof key, "mount.%d", i);
    char *v = config_get(key);
    if (!v) break;
    char fs[16], source[64], mode[4];
    int off = 0;
    if (sscanf(v, "%15s %63s %3s %n", fs, source, mode, &off) != 3 || off == 0 || v[off] != '/') {
      logmsg("bad %s: %s", key, v);
      free(v);
      power_off();
    }
    const char *target = v + off;
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
    snprintf(mounted[nmounted++], sizeof mounted[0], "%s%s", IMAGE, target);
    free(v);
  }
}

static void unmount_volumes(void) {
  for (int i = nmounted - 1; i >= 0; i--)
    if (umount2(mounted[i], 0) != 0) umount2(mounted[i], MNT_DETACH);
}

/* ---- services: start.d scripts and the supervised main command ---- */

enum restart { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };

struct service {
  char name[160];   /* for the log: "start.d/10-redis" or "main command" */
  char path[300];   /* start.d: the script inside the image */
  char *exec;       /* main: the encoded request (skiff-exec:BASE64) */
  enum restart restart;
  pid_t pid;
  long started_ms, next_ms;
  int backoff_s;
  int done;
};

#define MAX_SERVICES 64
static struct service services[MAX_SERVICES];
static int nservices;

static long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

static pid_t start_service(struct service *svc) {
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    setsid();
    stdio_to_console();
    struct request req = {0};
    static char payload[CONFIG_MAX];
    if (svc->exec) {
      size_t n = b64decode(svc->exec + 11, payload);
      parse_request(payload, n, &req);
    } else {
      /* A start script runs as root in / with the VM's environment, like a container's entrypoint. */
      req.cwd = "/";
      req.argv[0] = svc->path;
      req.argv[1] = NULL;
      req.argc = 1;
    }
    _exit(exec_in_image(&req, NULL, 0));
  }
  svc->pid = pid > 0 ? pid : 0;
  svc->started_ms = now_ms();
  return pid;
}

static int is_start_script(const struct dirent *e) {
  if (e->d_name[0] == '.') return 0;
  char path[512];
  struct stat st;
  snprintf(path, sizeof path, IMAGE "/etc/skiff/start.d/%s", e->d_name);
  return lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
}

/* Every executable file in the image's /etc/skiff/start.d, in name order, then the main command when init runs it. */
static void start_services(void) {
  struct dirent **list = NULL;
  int n = scandir(IMAGE "/etc/skiff/start.d", &list, is_start_script, alphasort);
  for (int i = 0; i < n; i++) {
    if (nservices < MAX_SERVICES - 1) {
      struct service *svc = &services[nservices++];
      snprintf(svc->name, sizeof svc->name, "start.d/%s", list[i]->d_name);
      snprintf(svc->path, sizeof svc->path, "/etc/skiff/start.d/%s", list[i]->d_name);
      svc->restart = RESTART_ALWAYS;
    }
    free(list[i]);
  }
  free(list);
  char *exec = config_get("main.exec");
  if (exec && strncmp(exec, "skiff-exec:", 11) == 0) {
    struct service *svc = &services[nservices++];
    snprintf(svc->name, sizeof svc->name, "main command");
    svc->exec = exec;
    char *policy = config_get("main.restart");
    svc->restart = !policy || strcmp(policy, "no") == 0 ? RESTART_NO
                   : strcmp(policy, "on-failure") == 0 ? RESTART_ON_FAILURE
                                                       : RESTART_ALWAYS; /* always, unless-stopped */
    free(policy);
  } else {
    free(exec);
  }
  for (int i = 0; i < nservices; i++) {
    services[i].backoff_s = 1;
    start_service(&services[i]);
  }
  if (nservices > 0) logmsg("started %d service%s", nservices, nservices == 1 ? "" : "s");
}

/*
 * A service ended: restart it by its policy, after a backoff that doubles
 * from 1 s to 30 s and starts over once a run lasted a minute. Returns 0
 * when `pid` was no service.
 */
static int service_exited(pid_t pid, int status) {
  for (int i = 0; i < nservices; i++) {
    struct service *svc = &services[i];
    if (svc->pid != pid) continue;
    svc->pid = 0;
    long now = now_ms();
    if (now - svc->started_ms >= 60000) svc->backoff_s = 1;
    char how[32];
    int failed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
    if (WIFSIGNALED(status)) snprintf(how, sizeof how, "signal %d", WTERMSIG(status));
    else snprintf(how, sizeof how, "status %d", WEXITSTATUS(status));
    if (svc->restart == RESTART_NO || (svc->restart == RESTART_ON_FAILURE && !failed)) {
      logmsg("%s exited (%s)", svc->name, how);
      svc->done = 1;
      return 1;
    }
    logmsg("%s exited (%s), restarting in %ds", svc->name, how, svc->backoff_s);
    svc->next_ms = now + svc->backoff_s * 1000L;
    svc->backoff_s = svc->backoff_s * 2 > 30 ? 30 : svc->backoff_s * 2;
    return 1;
  }
  return 0;
}

/* Start services whose backoff is over; returns ms until the next one is due (or -1). */
static long restart_due_services(void) {
  long now = now_ms(), next = -1;
  for (int i = 0; i < nservices; i++) {
    struct service *svc = &services[i];
    if (svc->done || svc->pid != 0) continue;
    if (svc->next_ms <= now) {
      start_service(svc);
    } else if (next < 0 || svc->next_ms - now < next) {
      next = svc->next_ms - now;
    }
  }
  return next;
}

/* ---- PID 1 ---- */

static volatile sig_atomic_t shutdown_requested;
static void on_shutdown(int sig) { (void)sig; shutdown_requested = 1; }

static int open_power_button(void) {
  DIR *d = opendir("/dev/input");
  if (!d) return -1;
  struct dirent *e;
  int found = -1;
  while ((e = readdir(d))) {
    if (strncmp(e->d_name, "event", 5) != 0) continue;
    char path[64];
    snprintf(path, sizeof path, "/dev/input/%s", e->d_name);
    int fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
    if (fd < 0) continue;
    unsigned long keys[KEY_MAX / (8 * sizeof(long)) + 1] = {0};
    if (ioctl(fd, EVIOCGBIT(EV_KEY, sizeof keys), keys) >= 0 &&
        (keys[KEY_POWER / (8 * sizeof(long))] >> (KEY_POWER % (8 * sizeof(long)))) & 1) {
      found = fd;
      break;
    }
    close(fd);
  }
  closedir(d);
  return found;
}

static pid_t console_shell;

/*
 * Everything gets SIGTERM and up to 5 s to end (services flush their data),
 * then SIGKILL; volumes are unmounted before the root so their journals are
 * clean. The console's shell ignores SIGTERM, as interactive shells do:
 * it goes first, so waiting ends as soon as the real work has.
 */
static void power_off(void) {
  logmsg("powering off");
  if (console_shell > 0) kill(-console_shell, SIGKILL);
  kill(-1, SIGTERM);
  for (int i = 0; i < 100; i++) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) break;
    usleep(50000);
  }
  kill(-1, SIGKILL);
  /* Killed processes let go of their files only once they are gone: wait (briefly) before unmounting. */
  for (int i = 0; i < 20; i++) {
    while (waitpid(-1, NULL, WNOHANG) > 0) {}
    if (waitpid(-1, NULL, WNOHANG) < 0 && errno == ECHILD) break;
    usleep(50000);
  }
  sync();
  unmount_volumes();
  umount2(IMAGE, MNT_DETACH);
  sync();
  reboot(RB_POWER_OFF);
  reboot(RB_AUTOBOOT); /* QEMU runs with -no-reboot: a reset ends it too */
  for (;;) pause();
}

/*
 * iptables and nft need netfilter modules, which the image does not carry
 * for skiff's kernel: load them (before anything runs) when the image has
 * one of those tools. Images without them pay nothing.
 */
static void load_netfilter(void) {
  static const char *const tools[] = {"/usr/sbin/iptables", "/sbin/iptables", "/usr/sbin/nft", "/sbin/nft", "/usr/sbin/iptables-legacy"};
  struct stat st;
  for (size_t i = 0; i < sizeof tools / sizeof tools[0]; i++) {
    char path[128];
    snprintf(path, sizeof path, IMAGE "%s", tools[i]);
    if (lstat(path, &st) == 0) {
      load_modules(TOOLS "/modules.netfilter");
      logmsg("netfilter modules loaded");
      return;
    }
  }
}

static int init_main(void) {
  mount("proc", "/proc", "proc", 0, NULL);
  mount("sysfs", "/sys", "sysfs", 0, NULL);
  mount("devtmpfs", "/dev", "devtmpfs", 0, "mode=0755");
  mkdir("/dev/pts", 0755);
  mount("devpts", "/dev/pts", "devpts", 0, "gid=5,mode=620,ptmxmode=666");
  symlink("pts/ptmx", "/dev/ptmx");
  mkdir("/dev/.skiff", 0755);
  mount(TOOLS, "/dev/.skiff", NULL, MS_BIND, NULL);
  mkdir("/dev/.skiff-run", 0700);
  int con = open("/dev/console", O_RDWR);
  if (con >= 0) {
    dup2(con, 0);
    dup2(con, 1);
    dup2(con, 2);
    if (con > 2) close(con);
  }
  config_text = read_file(TOOLS "/config", NULL);

  sigset_t block;
  sigemptyset(&block);
  sigaddset(&block, SIGCHLD);
  sigprocmask(SIG_BLOCK, &block, NULL);
  signal(SIGTERM, on_shutdown);
  signal(SIGPWR, on_shutdown);
  signal(SIGUSR2, on_shutdown);
  signal(SIGINT, on_shutdown);

  char *debug = config_get("debug");
  debug_timing = debug != NULL && strcmp(debug, "1") == 0;
  free(debug);
  logmsg("init");
  /* What the root disk and the agent need first; the rest after the agent is up. */
  load_modules(TOOLS "/modules.boot");
  logmsg("boot modules loaded");
  /* By serial: with volumes attached, the root is not necessarily the first disk probed. */
  char root[64];
  if (wait_for_disk("skiff-root", root, sizeof root, 5000) != 0) {
    if (wait_for("/dev/vda", 100) != 0) {
      logmsg("root disk did not appear");
      power_off();
    }
    snprintf(root, sizeof root, "/dev/vda"); /* a QEMU started without the serial */
  }
  mkdir(IMAGE, 0755);
  if (mount(root, IMAGE, "ext4", 0, NULL) != 0) {
    logmsg("cannot mount the root disk: %s", strerror(errno));
    power_off();
  }
  mount_image_view();
  configure_names();
  logmsg("root mounted");

  /* The port devices are created by devtmpfs as the virtio_console driver probes. */
  char *expected_text = config_get("agent.ports");
  int expected = expected_text ? atoi(expected_text) : 1;
  free(expected_text);
  for (int waited = 0; waited < 5000; waited += 5) {
    find_ports();
    if (nports >= expected) break;
    usleep(5000);
  }
  for (int i = 0; i < nports; i++) ports[i].relay = spawn_relay(ports[i].dev);
  logmsg("agent started (%d ports)", nports);
  load_modules(TOOLS "/modules.late");
  logmsg("late modules loaded");
  configure_network();
  logmsg("network configured");
  mount_volumes();
  load_netfilter();
  write_file("/dev/.skiff-run/configured", "", 0644);
  int button = open_power_button();
  logmsg("ready (%d agent ports)", nports);
  console_shell = spawn_console_shell();
  start_services();

  sigset_t empty;
  sigemptyset(&empty);
  while (!shutdown_requested) {
    struct pollfd p = {.fd = button, .events = POLLIN};
    long due = restart_due_services();
    struct timespec ts = {1, 0};
    if (due >= 0 && due < 1000) ts = (struct timespec){0, due * 1000000L};
    sigprocmask(SIG_UNBLOCK, &block, NULL);
    int r = ppoll(&p, button >= 0 ? 1 : 0, &ts, NULL);
    sigprocmask(SIG_BLOCK, &block, NULL);
    if (r > 0 && button >= 0) {
      struct input_event ev;
      while (read(button, &ev, sizeof ev) == sizeof ev)
        if (ev.type == EV_KEY && ev.code == KEY_POWER && ev.value == 1) shutdown_requested = 1;
    }
    if (nports < expected) {
      int before = nports;
      find_ports();
      for (int i = before; i < nports; i++) ports[i].relay = spawn_relay(ports[i].dev);
    }
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (!shutdown_requested && service_exited(pid, status)) continue;
      if (pid == console_shell && !shutdown_requested) {
        sleep(1); /* a shell that cannot start must not spin */
        console_shell = spawn_console_shell();
      }
      for (int i = 0; i < nports; i++)
        if (ports[i].relay == pid && !shutdown_requested) ports[i].relay = spawn_relay(ports[i].dev);
    }
  }
  power_off();
  return 0;
}

int main(int argc, char **argv) {
  const char *role = strrchr(argv[0], '/');
  role = role ? role + 1 : argv[0];
  if (*role == '-') role++;
  if (strcmp(role, "skiff-relay") == 0 && argc >= 2) return relay_main(argv[1]);
  if (strcmp(role, "skiff-shell") == 0) return shell_main(argc, argv);
  if (strcmp(role, "skiff-kill") == 0) return kill_main(argc, argv);
  if (strcmp(role, "skiff-detach") == 0) return detach_main(argc, argv);
  if (getpid() == 1) return init_main();
  fprintf(stderr, "usage: skiff-init is PID 1 of a skiff guest (roles: skiff-relay, skiff-shell, skiff-kill)\n");
  return 2;
}
