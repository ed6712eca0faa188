/*
 * PID 1: load modules, mount the image's root disk at /image, configure the
 * guest, keep one relay per agent port alive, start the services, reap
 * zombies, and power off on request.
 */
#include "skiff-init.h"

#include <dirent.h>
#include <linux/input.h>
#include <poll.h>
#include <sys/ioctl.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>


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

/*
 * A root shell on the serial console, so `skiff console` gives a prompt
 * even when the agent is broken. Respawned when it exits.
 */
static pid_t spawn_console_shell(void) {
  pid_t pid = fork_unblocked();
  if (pid == 0) {
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
void power_off(void) {
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

int init_main(void) {
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

  debug_timing = config_debug();
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
  char err[256];
  int expected = config_agent_ports(err, sizeof err);
  if (expected < 0) {
    logmsg("%s", err);
    power_off();
  }
  for (int waited = 0; waited < 5000; waited += 5) {
    find_agent_ports();
    if (agent_port_count() >= expected) break;
    usleep(5000);
  }
  spawn_relays(0);
  logmsg("agent started (%d ports)", agent_port_count());
  load_modules(TOOLS "/modules.late");
  logmsg("late modules loaded");
  configure_network();
  logmsg("network configured");
  mount_volumes();
  load_netfilter();
  write_file("/dev/.skiff-run/configured", "", 0644);
  int button = open_power_button();
  logmsg("ready (%d agent ports)", agent_port_count());
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
    if (agent_port_count() < expected) {
      int before = agent_port_count();
      find_agent_ports();
      spawn_relays(before);
    }
    pid_t pid;
    int status;
    while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
      if (!shutdown_requested && service_exited(pid, status)) continue;
      if (pid == console_shell && !shutdown_requested) {
        sleep(1); /* a shell that cannot start must not spin */
        console_shell = spawn_console_shell();
      }
      if (!shutdown_requested) relay_ended(pid);
    }
  }
  power_off();
  return 0;
}
