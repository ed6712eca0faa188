/*
 * skiff-shell: root's login shell in the agent world. Every SSH command
 * arrives here and is run chrooted into the image, as the requested user,
 * with the requested env and working directory; init's services go the
 * same way (exec_in_image).
 */
#include "skiff-init.h"

static const char *default_path = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

int shell_main(int argc, char **argv) {
  struct shell_call call;
  char err[256];
  if (read_shell_call(argc, argv, &call, err, sizeof err) != 0) {
    fprintf(stderr, "skiff: request refused: %s\n", err);
    return 126;
  }
  return exec_in_image(&call.req, call.command, call.sftp);
}

/*
 * Enter the image as the request says (root into /image, its user, env and
 * working directory) and exec: the request's argv, sftp-server, `sh -c
 * command`, or a login shell. Shared by SSH commands and the services init
 * starts itself. Returns only on failure, with the exit status to use.
 */
int exec_in_image(struct request *req_in, const char *command, int sftp) {
  struct request req = *req_in;

  /*
   * The agent answers before the network is configured (that overlaps with
   * the SSH handshake); commands wait for it, so they never see a half-set-up
   * guest.
   */
  struct stat ready_st;
  for (int i = 0; i < 1000 && stat("/dev/.skiff-run/configured", &ready_st) != 0; i++) usleep(5000);

  /* Env every command gets: the VM's (-e at run/create), then the request's. */
  size_t vm_env_len = 0;
  char *vm_env = read_file(TOOLS "/env", &vm_env_len);
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
    char **entries = env_entries(vm_env, vm_env_len);
    for (char **kv = entries; *kv; kv++) putenv(*kv);
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
