/*
 * skiff-relay: one per virtio-serial agent port. Handshakes with the host
 * (SKIFF-HELLO / SKIFF-READY; a SKIFF-IDENTITY is taken and answered on the
 * way), then serves skiff's own protocol (native.c) or, for an SSH session,
 * relays bytes between the port and `dropbear -i` over a socketpair
 * (dropbear -i insists on a socket for stdin), and starts over for the
 * next host session.
 */
#include "skiff-init.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>

static volatile sig_atomic_t port_event;
static void on_sigio(int sig) { (void)sig; port_event = 1; }

/* The relay's signal mask without SIGIO: what ppoll waits with (SIGIO is blocked everywhere else). */
static sigset_t sigio_open;

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
 * The answer to the last identity this relay took (identity.c): the host
 * repeats its line until it sees the answer, and a copy of a line already
 * taken gets the same answer again, not a second apply.
 */
static char identity_nonce_taken[NONCE_LEN + 1];
static char identity_reply[320];

/*
 * Never blocks: a write to a port whose host has hung up would wait for the
 * next host and hand it a stale answer. Whether all of `text` went.
 */
static int answer_now(int fd, const char *text, size_t len) {
  int flags = fcntl(fd, F_GETFL);
  fcntl(fd, F_SETFL, flags | O_NONBLOCK);
  int sent = write(fd, text, len) == (ssize_t)len;
  fcntl(fd, F_SETFL, flags);
  return sent;
}

/*
 * A guest restored from saved state (a snapshot, a hibernation) runs under
 * a new QEMU whose TCG translation cache is empty: every piece of guest
 * code runs through the translator once more. Its first command paid for
 * fork, exec, the dynamic loader and libc's start-up being translated
 * again: `exec true` took ~330 ms against ~230 for the next one, and the
 * same held for a first `cat` (restored, then `true`, then `cat`: 0.25 s;
 * `cat` first: 0.33 s). So once an identity that says warm=1 is answered,
 * the relay starts the image's `true` as a command is started
 * (exec_in_image: the image root, root's environment, execvp; no output
 * kept, nothing written) and lets it run on its own while the host's next
 * command is on its way: the host reads the answer, a CLI ends and the
 * next one starts, ~0.2 s in which the guest's CPU was idle. The host
 * leaves warm=1 out for fork's clones, which start side by side on the
 * host's cores and would slow each other's restore (fork -n 4 took a
 * median 153 ms longer with it, 10 paired runs). Detached twice, so PID 1
 * reaps it, not this relay. An image without `true` still warms fork and
 * exec; under KVM, where nothing is translated, it is one short process.
 */
static void warm_commands(void) {
  pid_t pid = fork();
  if (pid < 0) return;
  if (pid > 0) {
    waitpid(pid, NULL, 0);
    return;
  }
  if (fork_unblocked() != 0) _exit(0);
  setsid();
  signal(SIGPIPE, SIG_DFL);
  signal(SIGCHLD, SIG_DFL);
  signal(SIGIO, SIG_DFL);
  int null = open("/dev/null", O_RDWR);
  if (null >= 0) dup2(null, 0), dup2(null, 1), dup2(null, 2);
  struct request req = {.argc = 1};
  req.argv[0] = "true";
  _exit(exec_in_image(&req, NULL, 0));
}

/* `SKIFF-IDENTITY <nonce> <hex>`: a VM restored from a snapshot is told who it is now. */
static void take_identity(int fd, const char *line) {
  char nonce[NONCE_LEN + 1];
  if (identity_nonce(line, nonce) != 0) {
    logmsg("relay: an identity line without a nonce, dropped");
    return;
  }
  if (strcmp(nonce, identity_nonce_taken) != 0) {
    struct identity id;
    char err[256];
    int r = identity_decode(line, &id, err, sizeof err);
    if (r == 0) r = identity_apply(&id, err, sizeof err);
    if (r == 0) logmsg("new identity: %s", id.hostname);
    else logmsg("new identity refused: %s", err);
    int warm = r == 0 && id.warm;
    identity_free(&id);
    identity_answer(identity_reply, sizeof identity_reply, nonce, r == 0 ? NULL : err);
    memcpy(identity_nonce_taken, nonce, sizeof nonce);
    answer_now(fd, identity_reply, strlen(identity_reply));
    if (warm) warm_commands();
    return;
  }
  answer_now(fd, identity_reply, strlen(identity_reply));
}

/*
 * Read the host's "SKIFF-HELLO <nonce>" line, skipping stale bytes of an
 * older session. A host that gave up before its answer (a guest slowed
 * down by a busy host) leaves its HELLOs on the port: they are dropped when
 * it is seen gone, and of the HELLOs waiting at once the newest is
 * answered, so a stale nonce does not take the next host's session (it
 * would wait for its own answer while this end waits for SSH). An identity
 * line is taken and answered on the way; a waiting dropbear waits on.
 *
 * Returns 1 when the waiting dropbear (if any: `sock` is -1 without one)
 * ended first: it gives up on a client that does not authenticate within 5
 * minutes, and must be reaped before the host comes (else it stays a
 * zombie and the host's next SSH session on the port talks to nobody).
 *
 * The port is read in blocks, not a byte at a time: an identity line is
 * ~650 bytes, and a read per byte cost ~45 ms of a restored guest's cold
 * translation cache (measured in the guest: 50 ms from the port seen open
 * to the whole line; 1 ms in blocks). Nothing is read past the answered
 * line: the host sends only these lines until it sees its answer, and the
 * loop ends only with the block used up and no line begun.
 */
static int await_hello(int fd, int sock, char *nonce, size_t cap) {
  struct line_reader line = {0};
  char block[512];
  size_t used = 0, got = 0;
  int have = 0, result = 0;
  for (;;) {
    if (used < got) {
      if (!line_feed(&line, block[used++])) continue;
      if (strncmp(line.buf, "SKIFF-HELLO ", 12) == 0) {
        snprintf(nonce, cap, "%s", line.buf + 12);
        have = 1;
      } else if (strncmp(line.buf, "SKIFF-IDENTITY ", 15) == 0) {
        take_identity(fd, line.buf);
      }
      continue;
    }
    if (have && line.len == 0 && !line.dropping && !readable_now(fd)) break;
    /* Only hang-ups of `sock`: dropbear's greeting waits there for the host. */
    struct pollfd p[2] = {{.fd = fd, .events = POLLIN}, {.fd = sock, .events = 0}};
    int r = poll(p, 2, 60 * 1000);
    if (r < 0 && errno != EINTR) {
      result = -1;
      break;
    }
    if (r <= 0) continue;
    if (p[1].revents & (POLLHUP | POLLERR)) {
      result = 1;
      break;
    }
    if (p[0].revents & POLLHUP) {
      /*
       * No host on the other end: forget its bytes and sleep until one
       * comes. The port polls as hung up all that time, so poll cannot wait
       * for it; the driver sends SIGIO when the host opens the port.
       * SIGIO is blocked except inside ppoll, so one sent before the wait
       * ends it at once. (This slept 50 ms and looked again: eight idle
       * ports woke the guest 160 times a second, most of an idle VM's CPU.)
       */
      line_reset(&line);
      have = 0;
      drop_input(fd);
      struct pollfd d = {.fd = sock, .events = 0};
      struct timespec ts = {60, 0};
      if (ppoll(&d, 1, &ts, &sigio_open) > 0 && (d.revents & (POLLHUP | POLLERR))) {
        result = 1;
        break;
      }
      continue;
    }
    ssize_t n = read(fd, block, sizeof block);
    if (n > 0) {
      got = (size_t)n;
      used = 0;
    }
  }
  line_free(&line);
  return result;
}

/*
 * dropbear is started when a host asks for an SSH session, not before. Each
 * relay used to start one at boot so that its start-up (dynamic linking,
 * key loading) was off the path of a connect; but skiff's own operations
 * speak native.c's protocol now, and eight dropbears starting at once on
 * the guest's one emulated CPU held up the network set-up behind them:
 * skiff-init's steps from its start to ready took 0.55 s instead of 0.2
 * (skiff's kernel, SKIFF_GUEST_DEBUG stamps). An SSH session (`skiff ssh`,
 * scp, an editor) pays the start instead, lost in its key exchange's cost:
 * `SKIFF_AGENT_PROTOCOL=ssh skiff exec VM true`, paired, medians of 8,
 * 481 ms against 507 before.
 */
static pid_t start_dropbear(int *sock_out) {
  int sv[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) != 0) return -1;
  pid_t pid = fork();
  if (pid == 0) {
    /* The session's processes start with no signal blocked. */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
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

/*
 * Relay bytes between the port and dropbear until either end goes. Returns
 * 1, with dropbear untouched (it has had no byte yet), when a new host's
 * HELLO came before the session began (greeting.c); else 0, dropbear ended.
 */
static int relay_session(int port, pid_t pid, int sock, struct preamble *pre) {
  char buf[65536];
  int preamble = 1;
  for (;;) {
    /*
     * dropbear's banner waits in the socket until the session begins: sent
     * before, it could go to a host that is not the session's, and it is
     * sent only once. (An SSH client sends its own banner without waiting.)
     */
    struct pollfd p[2] = {{.fd = port, .events = POLLIN}, {.fd = sock, .events = preamble ? 0 : POLLIN}};
    if (poll(p, 2, -1) < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & POLLHUP) break; /* host went away: end the session */
    if (p[0].revents & POLLIN) {
      ssize_t n = read(port, buf, sizeof buf);
      if (n <= 0) break;
      size_t start = 0;
      if (preamble) {
        int v = preamble_feed(pre, (const unsigned char *)buf, (size_t)n, &start);
        if (v == PREAMBLE_NEW_HOST) return 1;
        if (v == PREAMBLE_END) {
          /* The start of SSH: pass on what the preamble held back. */
          preamble = 0;
          if (pre->len > 0 && write(sock, pre->held, pre->len) != (ssize_t)pre->len) goto done;
        }
      }
      for (ssize_t off = (ssize_t)start; off < n;) {
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

int relay_main(const char *dev) {
  signal(SIGIO, on_sigio);
  sigset_t io;
  sigemptyset(&io);
  sigaddset(&io, SIGIO);
  sigprocmask(SIG_BLOCK, &io, &sigio_open);
  sigdelset(&sigio_open, SIGIO);
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
  int sock = -1;
  pid_t pid = -1;
  for (;;) {
    char nonce[96];
    int waited = await_hello(fd, sock, nonce, sizeof nonce);
    if (waited != 0) {
      if (pid > 0) {
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        close(sock);
      }
      pid = -1;
      sock = -1;
      if (waited < 0) return 1;
      continue;
    }
    /*
     * Answer, then serve; again for as long as the session finds a new
     * host's HELLO before it began: the answer went to a host that had
     * gone, or reached the new one with the old nonce (greeting.c). The
     * answer never blocks: a port with no host takes no write, and the
     * HELLO is then stale (a blocked write would hand it to the next host).
     */
    struct preamble pre;
    for (;;) {
      char ready[128];
      int n = snprintf(ready, sizeof ready, "SKIFF-READY %s\n", nonce);
      if (!answer_now(fd, ready, (size_t)n)) break;
      preamble_start(&pre, nonce);
      size_t len = strlen(nonce);
      int native = len > 8 && strcmp(nonce + len - 8, " native1") == 0;
      /* SSH takes the dropbear an earlier greeting left waiting, or starts one now. */
      if (!native && pid < 0 && (pid = start_dropbear(&sock)) < 0) return 1;
      int again = native ? native_session(fd, &pre) : relay_session(fd, pid, sock, &pre);
      if (!native && !again) {
        /* dropbear served the session and ended with it (relay_session closed its socket) */
        pid = -1;
        sock = -1;
      }
      if (!again) break;
      snprintf(nonce, sizeof nonce, "%s", pre.fresh);
    }
  }
}
