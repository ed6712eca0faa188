/*
 * Services init starts and supervises: every executable file in the
 * image's /etc/skiff/start.d, and the main command when the host hands it
 * to init (`main.exec=`, `skiff up` services), each restarted by its policy.
 */
#include "skiff-init.h"

#include <dirent.h>
#include <sys/wait.h>

struct service {
  char name[300];   /* for the log: "start.d/10-redis" or "main command" */
  char path[300];   /* start.d: the script inside the image */
  char *exec;       /* main: the encoded request (skiff-exec:BASE64) */
  enum restart restart;
  pid_t pid;
  long started_ms, next_ms;
  int backoff_s;
  int done;
  pid_t watch_sid;  /* a start script that exited 0 and left its session running: restarted when the session ends */
};

/* Every start.d script, however many, and the main command. */
static struct service *services;
static int nservices;

static pid_t start_service(struct service *svc) {
  pid_t pid = fork_unblocked();
  if (pid == 0) {
    for (int sig = 1; sig < NSIG; sig++) signal(sig, SIG_DFL);
    setsid();
    stdio_to_console();
    struct request req = {0};
    char err[256];
    if (svc->exec && decode_request(svc->exec, &req, err, sizeof err) != 0) {
      fprintf(stderr, "skiff: %s refused: %s\n", svc->name, err);
      _exit(126);
    }
    if (!svc->exec) {
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

/* Every executable file in the image's /etc/skiff/start.d, in name order, then the main command when init runs it. */
void start_services(void) {
  int n;
  char **scripts = start_scripts(IMAGE "/etc/skiff/start.d", &n);
  services = calloc(n + 1, sizeof *services);
  if (!services) {
    logmsg("no memory for %d services", n + 1);
    power_off();
  }
  for (int i = 0; i < n; i++) {
    struct service *svc = &services[nservices++];
    snprintf(svc->name, sizeof svc->name, "start.d/%s", scripts[i]);
    snprintf(svc->path, sizeof svc->path, "/etc/skiff/start.d/%s", scripts[i]);
    svc->restart = RESTART_ALWAYS;
    free(scripts[i]);
  }
  free(scripts);
  char *exec;
  enum restart restart;
  if (config_main(&exec, &restart)) {
    struct service *svc = &services[nservices++];
    snprintf(svc->name, sizeof svc->name, "main command");
    svc->exec = exec;
    svc->restart = restart;
  }
  for (int i = 0; i < nservices; i++) {
    services[i].backoff_s = 1;
    start_service(&services[i]);
  }
  if (nservices > 0) logmsg("started %d service%s", nservices, nservices == 1 ? "" : "s");
}

/* Whether any process is still in session `sid` (field 6 of /proc/PID/stat, after the parenthesised comm). */
static int session_alive(pid_t sid) {
  DIR *d = opendir("/proc");
  if (!d) return 0;
  struct dirent *e;
  int alive = 0;
  while (!alive && (e = readdir(d)) != NULL) {
    if (e->d_name[0] < '0' || e->d_name[0] > '9') continue;
    char path[64], buf[512];
    snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) continue;
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n <= 0) continue;
    buf[n] = 0;
    char *end = strrchr(buf, ')');
    int pid_session = 0;
    if (end && sscanf(end + 1, " %*c %*d %*d %d", &pid_session) == 1 && pid_session == sid) alive = 1;
  }
  closedir(d);
  return alive;
}

/*
 * A service ended: restart it by its policy, after a backoff that doubles
 * from 1 s to 30 s and starts over once a run lasted a minute. Returns 0
 * when `pid` was no service.
 */
int service_exited(pid_t pid, int status) {
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
    /*
     * A start script that ends well has started its daemon, as an init
     * script does (Pontoon's layers background theirs with `&`): restarting
     * it would start a second daemon beside the first, and so on. While its
     * session lives on (the `&` case) it is watched and started again when
     * the session ends; a daemon that detached into a session of its own is
     * left to itself. A script that fails is restarted as before.
     */
    if (svc->exec == NULL && !failed) {
      if (session_alive(pid)) {
        svc->watch_sid = pid;
        logmsg("%s exited (%s), leaving its daemon running: started again when that ends", svc->name, how);
      } else {
        logmsg("%s exited (%s)", svc->name, how);
        svc->done = 1;
      }
      return 1;
    }
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
long restart_due_services(void) {
  long now = now_ms(), next = -1;
  for (int i = 0; i < nservices; i++) {
    struct service *svc = &services[i];
    if (svc->done || svc->pid != 0) continue;
    if (svc->watch_sid != 0) {
      if (session_alive(svc->watch_sid)) continue;
      logmsg("%s: its daemon ended, restarting in %ds", svc->name, svc->backoff_s);
      svc->watch_sid = 0;
      if (now - svc->started_ms >= 60000) svc->backoff_s = 1;
      svc->next_ms = now + svc->backoff_s * 1000L;
      svc->backoff_s = svc->backoff_s * 2 > 30 ? 30 : svc->backoff_s * 2;
    }
    if (svc->next_ms <= now) {
      start_service(svc);
    } else if (next < 0 || svc->next_ms - now < next) {
      next = svc->next_ms - now;
    }
  }
  return next;
}
