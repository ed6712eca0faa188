/*
 * Helpers every role uses: the console log, whole-file reads and writes,
 * running a tool and waiting for it, and the clock.
 */
#include "skiff-init.h"

#include <stdarg.h>
#include <sys/wait.h>
#include <time.h>

/* Set from the config (`debug=1`): every message carries the guest's uptime, to see where a boot spends its time. */
int debug_timing;

void logmsg(const char *fmt, ...) {
  /* One write per line: the console's shell (respawned for a new identity)
   * writes to the same tty, and a prefix written apart from its line was
   * seen split from it by the shell's banner. */
  char buf[512];
  int n = snprintf(buf, sizeof buf, "skiff: ");
  if (debug_timing) {
    struct timespec ts;
    clock_gettime(CLOCK_BOOTTIME, &ts);
    n += snprintf(buf + n, sizeof buf - n, "[%ld.%03ld] ", (long)ts.tv_sec, ts.tv_nsec / 1000000);
  }
  va_list ap;
  va_start(ap, fmt);
  int m = vsnprintf(buf + n, sizeof buf - 1 - n, fmt, ap);
  va_end(ap);
  if (m < 0) return;
  n += m;
  if (n > (int)sizeof buf - 2) n = sizeof buf - 2;
  buf[n++] = '\n';
  int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);
  if (fd >= 0) {
    (void)!write(fd, buf, n);
    close(fd);
  }
}

int write_file(const char *path, const char *data, mode_t mode) {
  int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
  if (fd < 0) return -1;
  size_t len = strlen(data);
  int ok = write(fd, data, len) == (ssize_t)len;
  close(fd);
  return ok ? 0 : -1;
}

/* The whole file, however long (the host's hosts file or env may be big), NUL-terminated; NULL when it cannot be read. */
char *read_file(const char *path, size_t *len_out) {
  int fd = open(path, O_RDONLY | O_CLOEXEC);
  if (fd < 0) return NULL;
  size_t cap = 4096, len = 0;
  char *buf = malloc(cap + 1);
  ssize_t n;
  while (buf && (n = read(fd, buf + len, cap - len)) > 0) {
    len += n;
    if (len == cap) buf = realloc(buf, (cap *= 2) + 1);
  }
  close(fd);
  if (!buf) return NULL;
  buf[len] = 0;
  if (len_out) *len_out = len;
  return buf;
}

/* fork(); the child starts with no signal blocked (init blocks the ones it waits for), as a new program expects. */
pid_t fork_unblocked(void) {
  pid_t pid = fork();
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
  }
  return pid;
}

int run(char *const argv[]) {
  pid_t pid = fork();
  if (pid == 0) {
    execv(argv[0], argv);
    _exit(127);
  }
  int status = 0;
  if (pid < 0 || waitpid(pid, &status, 0) < 0) return -1;
  return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

int wait_for(const char *path, int ms) {
  struct stat st;
  for (int waited = 0; waited < ms; waited += 5) {
    if (stat(path, &st) == 0) return 0;
    usleep(5000);
  }
  return stat(path, &st);
}

void mkdir_p(const char *path, mode_t mode) {
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
/* A background program's stdio: no input, output on the serial console (so `skiff logs` shows it). */
void stdio_to_console(void) {
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

long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Say why in `err` (printf-style) and return -1: how a parser refuses. */
int refuse(char *err, size_t errcap, const char *fmt, ...) {
  va_list ap;
  va_start(ap, fmt);
  vsnprintf(err, errcap, fmt, ap);
  va_end(ap);
  return -1;
}
