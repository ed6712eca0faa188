/* The small exec helpers the host calls through the agent: skiff-kill and skiff-detach. */
#include "skiff-init.h"

/* ---- kill role: `skiff-kill PIDFILE SIGNAL`, used by the host for Ctrl-C without a PTY ---- */

int kill_main(int argc, char **argv) {
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
int detach_main(int argc, char **argv) {
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
