/*
 * skiff's own protocol on an agent port (src/guest/native/frames.ts is the
 * host's end; docs/architecture.md, "Guest protocol"): framed, versioned,
 * every length bounded, one command at a time per session, as many
 * sessions as the VM has ports. It replaces SSH for skiff's commands: no
 * key exchange on an emulated CPU, stdout and stderr as separate streams
 * with flow control both ways, signals to any number, no 9000-byte limit.
 *
 * A frame is a 4-byte big-endian payload length, a type byte, the payload.
 * The host's frames carry credit for the guest's output and the guest
 * answers with credit for stdin, so neither end holds more than a window.
 * A frame the guest cannot take is answered with ERROR; one whose length
 * is out of bounds ends the session (the framing is lost), and the port
 * serves the next one.
 */
#include "skiff-init.h"

#include <poll.h>
#include <stdarg.h>
#include <stdint.h>
#include <pty.h>
#include <sys/ioctl.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/wait.h>

/* Write all of `len` bytes, waiting while the port is full. -1 when the host has gone. */
static int write_all(int fd, const void *data, size_t len) {
  const char *p = data;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && errno == EAGAIN) {
      struct pollfd w = {.fd = fd, .events = POLLOUT};
      if (poll(&w, 1, 1000) < 0 && errno != EINTR) return -1;
      continue;
    }
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static int send_frame(int port, int type, const void *payload, size_t len) {
  unsigned char head[5];
  put32(head, (uint32_t)len);
  head[4] = (unsigned char)type;
  if (write_all(port, head, sizeof head) != 0) return -1;
  return len == 0 ? 0 : write_all(port, payload, len);
}

static int send_u32(int port, int type, uint32_t v) {
  unsigned char b[4];
  put32(b, v);
  return send_frame(port, type, b, 4);
}

static int send_error(int port, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int send_error(int port, const char *fmt, ...) {
  char text[256];
  va_list ap;
  va_start(ap, fmt);
  int n = vsnprintf(text, sizeof text, fmt, ap);
  va_end(ap);
  if (n < 0) n = 0;
  if ((size_t)n >= sizeof text) n = sizeof text - 1;
  return send_frame(port, F_ERROR, text, (size_t)n);
}

/* The command a session runs: its process, its ends of the streams, what is owed either way. */
struct command {
  pid_t pid;
  int in, out, err; /* -1 when closed; with a PTY out is the master and in == out, err == -1 */
  int tty;
  int exited, status;
  long exited_at;       /* now_ms() when it exited */
  uint32_t out_credit;  /* output bytes the host will take */
  unsigned char *stdin_buf; /* WINDOW bytes: stdin taken from the host, not yet written */
  size_t stdin_len;
  int stdin_eof;        /* the host closed stdin: close ours once the buffer is written */
  int eot_sent;         /* on a PTY, the end of stdin went as the terminal's EOF character */
  size_t after_exit;    /* output bytes read since the command exited */
  int file;             /* GET or PUT: a file of the image in place of a process */
};

/*
 * After its exit a command's pipes hold at most what the kernel buffered
 * (64 KiB, 1 MiB if it asked): more than this comes from a background
 * process still writing, which would otherwise keep the exit unreported.
 */
#define AFTER_EXIT_MAX (1 << 20)
#define AFTER_EXIT_MS 1000

static void close_fd(int *fd) {
  if (*fd >= 0) close(*fd);
  *fd = -1;
}

/*
 * Start the request in `payload` (request.c's records). The child enters
 * the image as skiff-shell does (exec_in_image); its failures to do so
 * reach the host as stderr and exit status 126/127, as over SSH.
 */
static int start_command(struct command *c, unsigned char *payload, size_t len, char *err, size_t errcap) {
  static struct exec_call call;
  if (parse_exec(payload, len, &call, err, errcap) != 0) return -1;
  struct request req = call.req;
  req.pidfile = NULL; /* signals come as frames */
  int tty = call.tty;
  const char *term = call.term;
  struct winsize ws = {.ws_row = call.rows, .ws_col = call.cols};

  int in[2] = {-1, -1}, out[2] = {-1, -1}, er[2] = {-1, -1}, master = -1, slave = -1;
  if (tty) {
    if (openpty(&master, &slave, NULL, NULL, &ws) != 0) return refuse(err, errcap, "no PTY: %s", strerror(errno));
  } else if (pipe2(in, O_CLOEXEC) != 0 || pipe2(out, O_CLOEXEC) != 0 || pipe2(er, O_CLOEXEC) != 0) {
    int e = errno;
    for (int i = 0; i < 2; i++) close_fd(&in[i]), close_fd(&out[i]), close_fd(&er[i]);
    return refuse(err, errcap, "no pipes: %s", strerror(e));
  }
  pid_t pid = fork_unblocked();
  if (pid < 0) {
    int e = errno;
    close_fd(&master), close_fd(&slave);
    for (int i = 0; i < 2; i++) close_fd(&in[i]), close_fd(&out[i]), close_fd(&er[i]);
    return refuse(err, errcap, "fork: %s", strerror(e));
  }
  if (pid == 0) {
    setsid();
    signal(SIGPIPE, SIG_DFL);
    signal(SIGCHLD, SIG_DFL);
    signal(SIGIO, SIG_DFL);
    if (tty) {
      ioctl(slave, TIOCSCTTY, 0);
      dup2(slave, 0), dup2(slave, 1), dup2(slave, 2);
      if (slave > 2) close(slave);
      close(master);
      setenv("TERM", *term ? term : "xterm-256color", 1);
    } else {
      dup2(in[0], 0), dup2(out[1], 1), dup2(er[1], 2);
      unsetenv("TERM");
    }
    _exit(exec_in_image(&req, NULL, 0));
  }
  static unsigned char stdin_window[WINDOW];
  memset(c, 0, sizeof *c);
  c->stdin_buf = stdin_window;
  c->pid = pid;
  c->tty = tty;
  c->out_credit = WINDOW;
  if (tty) {
    close(slave);
    c->in = master;
    c->out = dup(master);
    c->err = -1;
    fcntl(c->in, F_SETFD, FD_CLOEXEC);
    fcntl(c->out, F_SETFD, FD_CLOEXEC);
  } else {
    close(in[0]), close(out[1]), close(er[1]);
    c->in = in[1];
    c->out = out[0];
    c->err = er[0];
  }
  fcntl(c->in, F_SETFL, fcntl(c->in, F_GETFL) | O_NONBLOCK);
  return 0;
}

/*
 * GET (`put` 0) or PUT: a file of the image stands in for a command's
 * output or input, under the same flow control; its end is an EXIT whose
 * status is 0 or the errno that cut it short.
 */
static int start_file(struct command *c, const unsigned char *payload, size_t len, int put, char *err, size_t errcap) {
  size_t skip = put ? 4 : 0;
  if (len <= skip || len - skip > 4095 || payload[skip] != '/' || memchr(payload + skip, 0, len - skip))
    return refuse(err, errcap, "a file path must be absolute, without NUL, at most 4095 bytes");
  char path[4096];
  memcpy(path, payload + skip, len - skip);
  path[len - skip] = 0;
  mode_t mode = put ? (mode_t)(be32(payload) & 07777) : 0;
  int fd = put ? open_in_image(path, O_WRONLY | O_CREAT | O_TRUNC | O_NOCTTY, mode) : open_in_image(path, O_RDONLY | O_NOCTTY | O_NONBLOCK, 0);
  if (fd < 0) return refuse(err, errcap, "%s: %s", strerror(errno), path);
  struct stat st;
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    close(fd);
    return refuse(err, errcap, "not a regular file: %s", path);
  }
  if (put && fchmod(fd, mode) != 0) {
    int e = errno;
    close(fd);
    return refuse(err, errcap, "%s: %s", strerror(e), path);
  }
  static unsigned char stdin_window[WINDOW];
  memset(c, 0, sizeof *c);
  c->stdin_buf = stdin_window;
  c->pid = -1;
  c->file = 1;
  c->out_credit = WINDOW;
  c->in = put ? fd : -1;
  c->out = put ? -1 : fd;
  c->err = -1;
  c->exited = !put; /* a GET ends when its file does; a PUT when its input does */
  return 0;
}

/* Move what the child's stream has (up to the host's credit) into a frame. 0 at EOF (closed), -1 when the host is gone. */
static int pump_output(int port, struct command *c, int *fd, int type) {
  static unsigned char buf[MAX_FRAME];
  size_t cap = c->out_credit < sizeof buf ? c->out_credit : sizeof buf;
  if (cap == 0) return 1;
  ssize_t n = read(*fd, buf, cap);
  if (n < 0 && (errno == EINTR || errno == EAGAIN)) return 1;
  if (n <= 0) { /* EOF, or EIO from a PTY whose last holder closed it */
    if (n < 0 && c->file) c->status = (errno & 0xff) << 8;
    if (c->tty) close_fd(&c->in);
    close_fd(fd);
    return 0;
  }
  c->out_credit -= (uint32_t)n;
  if (c->exited) c->after_exit += (size_t)n;
  return send_frame(port, type, buf, (size_t)n) == 0 ? 1 : -1;
}

/* Write buffered stdin into the child; grant the host what was written. */
static int pump_stdin(int port, struct command *c) {
  if (c->in < 0) {
    /* The command closed its stdin: what the host sends is dropped, and granted again so it is not stuck. */
    size_t gone = c->stdin_len;
    c->stdin_len = 0;
    return gone ? send_u32(port, F_STDIN_CREDIT, (uint32_t)gone) : 0;
  }
  if (c->stdin_len > 0) {
    ssize_t n = write(c->in, c->stdin_buf, c->stdin_len);
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return 0;
    if (n < 0) { /* EPIPE: the reader is gone; for a file, ENOSPC or EIO: its exit status */
      if (c->file) c->status = (errno & 0xff) << 8, c->exited = 1;
      if (!c->tty) close_fd(&c->in);
      size_t gone = c->stdin_len;
      c->stdin_len = 0;
      return send_u32(port, F_STDIN_CREDIT, (uint32_t)gone);
    }
    memmove(c->stdin_buf, c->stdin_buf + n, c->stdin_len - (size_t)n);
    c->stdin_len -= (size_t)n;
    if (send_u32(port, F_STDIN_CREDIT, (uint32_t)n) != 0) return -1;
  }
  if (c->stdin_len == 0 && c->stdin_eof) {
    if (c->file && c->in >= 0) {
      /* PUT's end: the file is whole once close says so (a full disk may only show here). */
      if (close(c->in) != 0 && c->status == 0) c->status = (errno & 0xff) << 8;
      c->in = -1;
      c->exited = 1;
    } else if (!c->tty) {
      close_fd(&c->in);
    } else if (!c->eot_sent) {
      /* A PTY has no half-close: the end of input is the terminal's EOF character. */
      char eot = 4;
      c->eot_sent = write(c->in, &eot, 1) == 1 || errno != EAGAIN;
    }
  }
  return 0;
}

/* End the command's process group: the host went away, or the session ends. */
static void hang_up(struct command *c) {
  if (c->pid <= 0 || c->exited) return;
  kill(-c->pid, SIGHUP);
  kill(c->pid, SIGKILL);
  kill(-c->pid, SIGKILL);
  waitpid(c->pid, NULL, 0);
  c->exited = 1;
}

static int exit_frame(int port, int status) {
  unsigned char b[8];
  put32(b, WIFEXITED(status) ? (uint32_t)WEXITSTATUS(status) : 128u + (uint32_t)WTERMSIG(status));
  put32(b + 4, WIFSIGNALED(status) ? (uint32_t)WTERMSIG(status) : 0);
  return send_frame(port, F_EXIT, b, sizeof b);
}

/*
 * A frame from the host. Returns 0 to go on, -1 to end the session (the
 * host is gone). `running` is the command or NULL between commands.
 */
static int take_frame(int port, struct frame_reader *r, struct command *c, int *running) {
  unsigned char *p = r->payload;
  uint32_t len = r->len;
  int type = r->head[4];
  switch (type) {
  case F_PING:
    return send_frame(port, F_PONG, p, len);
  case F_EXEC: {
    if (*running) return send_error(port, "a command already runs on this session");
    char err[256];
    if (start_command(c, p, len, err, sizeof err) != 0) return send_error(port, "request refused: %s", err);
    *running = 1;
    return send_u32(port, F_STARTED, (uint32_t)c->pid);
  }
  case F_STAT: {
    if (*running) return send_error(port, "STAT while a command runs on this session");
    if (len < 2 || len - 1 > 4095 || p[1] != '/' || memchr(p + 1, 0, len - 1)) return send_error(port, "STAT takes a flag byte and an absolute path");
    char path[4096];
    memcpy(path, p + 1, len - 1);
    path[len - 1] = 0;
    unsigned char reply[36];
    return send_frame(port, F_STAT_REPLY, reply, stat_reply(reply, path, p[0] & 1));
  }
  case F_GET:
  case F_PUT: {
    if (*running) return send_error(port, "a command already runs on this session");
    char err[256];
    if (start_file(c, p, len, type == F_PUT, err, sizeof err) != 0) return send_error(port, "%s", err);
    *running = 1;
    return send_u32(port, F_STARTED, 0);
  }
  case F_STDIN:
    if (!*running) return 0; /* late stdin of a command that ended: nothing to do */
    if (c->stdin_eof) return send_error(port, "stdin after its end");
    if (len > WINDOW - c->stdin_len) return send_error(port, "stdin beyond the window (%u bytes, %zu free)", len, WINDOW - c->stdin_len);
    memcpy(c->stdin_buf + c->stdin_len, p, len);
    c->stdin_len += len;
    return pump_stdin(port, c);
  case F_STDIN_EOF:
    if (!*running) return 0;
    c->stdin_eof = 1;
    return pump_stdin(port, c);
  case F_SIGNAL: {
    if (len != 4) return send_error(port, "SIGNAL takes 4 bytes, not %u", len);
    uint32_t signo = be32(p);
    if (signo < 1 || signo > 64) return send_error(port, "no signal %u", signo);
    if (*running && !c->exited && c->pid > 0) kill(c->pid, (int)signo); /* a file has no process: kill(-1) would hit every one */
    return 0;
  }
  case F_RESIZE: {
    if (len != 4) return send_error(port, "RESIZE takes 4 bytes, not %u", len);
    struct winsize ws = {.ws_row = (unsigned short)(p[0] << 8 | p[1]), .ws_col = (unsigned short)(p[2] << 8 | p[3])};
    if (*running && c->tty && c->in >= 0) ioctl(c->in, TIOCSWINSZ, &ws);
    return 0;
  }
  case F_CREDIT: {
    if (len != 4) return send_error(port, "CREDIT takes 4 bytes, not %u", len);
    uint32_t more = be32(p);
    if (!*running) return 0;
    if (more > WINDOW || c->out_credit + more > WINDOW) return send_error(port, "credit beyond the window");
    c->out_credit += more;
    return 0;
  }
  default:
    return send_error(port, "unknown frame type 0x%02x", type);
  }
}

/*
 * Serve one host session on `port` (after READY): commands one after
 * another until the host hangs up. Returns when it has.
 */
int native_session(int port, struct preamble *pre) {
  static unsigned char payload[MAX_FRAME];
  struct frame_reader r = {.payload = payload};
  struct command c = {.pid = -1, .in = -1, .out = -1, .err = -1};
  int running = 0;

  sigset_t chld;
  sigemptyset(&chld);
  sigaddset(&chld, SIGCHLD);
  sigprocmask(SIG_BLOCK, &chld, NULL);
  int sfd = signalfd(-1, &chld, SFD_CLOEXEC | SFD_NONBLOCK);

  /*
   * HELLO says the guest is ready: the relays answer before the late
   * modules, the network, volumes and netfilter are set up (init.c), and
   * a host that took HELLO for ready would run commands into a half-set-up
   * guest, or snapshot one (a boot snapshot taken there resumed with no
   * eth0 yet: its new MAC could not be set). As exec_in_image, wait up to
   * 5 s for init to say configured. (Over SSH the key exchange took
   * longer than that set-up; nothing waited for it.)
   */
  wait_for("/dev/.skiff-run/configured", 5000);

  unsigned char hello[8];
  put32(hello, NATIVE_VERSION);
  put32(hello + 4, MAX_FRAME);
  int alive = sfd >= 0 && send_frame(port, F_HELLO, hello, sizeof hello) == 0;
  /*
   * Copies of the host's HELLO line may follow the one answered: dropped
   * until the first frame (greeting.c); a HELLO of a new host ends the
   * session before it began.
   */
  int preamble = 1, new_host = 0;
  long quiet_since = 0;

  while (alive) {
    struct pollfd p[5];
    int np = 0;
    p[np++] = (struct pollfd){.fd = port, .events = POLLIN};
    p[np++] = (struct pollfd){.fd = sfd, .events = POLLIN};
    int i_out = -1, i_err = -1, i_in = -1;
    if (running && c.out >= 0 && c.out_credit > 0) i_out = np, p[np++] = (struct pollfd){.fd = c.out, .events = POLLIN};
    if (running && c.err >= 0 && c.out_credit > 0) i_err = np, p[np++] = (struct pollfd){.fd = c.err, .events = POLLIN};
    if (running && c.in >= 0 && (c.stdin_len > 0 || (c.tty && c.stdin_eof && !c.eot_sent))) i_in = np, p[np++] = (struct pollfd){.fd = c.in, .events = POLLOUT};
    /*
     * After the command exited, its output is read to the end; a process
     * it left behind holding the streams open does not keep the command
     * from ending: once they stay quiet for 50 ms (or past AFTER_EXIT_MAX
     * bytes or AFTER_EXIT_MS) the exit is reported.
     */
    int timeout = running && c.exited && !c.file ? 50 : -1;
    int n = poll(p, (nfds_t)np, timeout);
    if (n < 0) {
      if (errno == EINTR) continue;
      break;
    }
    if (p[0].revents & POLLHUP) break;
    if (p[0].revents & POLLIN) {
      unsigned char buf[16384];
      ssize_t got = read(port, buf, sizeof buf);
      if (got <= 0) break;
      size_t off = 0, len = (size_t)got;
      if (preamble) {
        int v = preamble_feed(pre, buf, len, &off);
        if (v == PREAMBLE_NEW_HOST) {
          new_host = 1;
          break;
        }
        if (v == PREAMBLE_END) {
          preamble = 0;
          /* A line that began as a HELLO and was not one: its bytes are the session's, before the rest. */
          size_t used;
          if (pre->len > 0 && frame_feed(&r, (const unsigned char *)pre->held, pre->len, &used) < 0) {
            send_error(port, "frame of %u bytes is longer than %d: session ended", r.len, MAX_FRAME);
            break;
          }
        }
      }
      while (off < len && alive && !preamble) {
        size_t used;
        int f = frame_feed(&r, buf + off, len - off, &used);
        off += used;
        if (f < 0) {
          send_error(port, "frame of %u bytes is longer than %d: session ended", r.len, MAX_FRAME);
          alive = 0;
          break;
        }
        if (f == 1) {
          if (take_frame(port, &r, &c, &running) != 0) alive = 0;
          r.have = 0;
        }
      }
    }
    if (!alive) break;
    if (i_in >= 0 && (p[i_in].revents & (POLLOUT | POLLERR | POLLHUP)) && pump_stdin(port, &c) != 0) break;
    if (i_out >= 0 && (p[i_out].revents & (POLLIN | POLLHUP | POLLERR)) && pump_output(port, &c, &c.out, F_STDOUT) < 0) break;
    if (i_err >= 0 && (p[i_err].revents & (POLLIN | POLLHUP | POLLERR)) && pump_output(port, &c, &c.err, F_STDERR) < 0) break;
    if (p[1].revents & POLLIN) {
      struct signalfd_siginfo si;
      while (read(sfd, &si, sizeof si) == sizeof si) {
      }
      if (running && !c.exited && c.pid > 0) {
        int status;
        if (waitpid(c.pid, &status, WNOHANG) == c.pid) {
          c.exited = 1;
          c.status = status;
          c.exited_at = quiet_since = now_ms();
        }
      }
      /* Reap whatever else ended (the relay's own children are dropbear, waited for by pid elsewhere). */
    }
    if (running && c.exited) {
      int active = n > 0 && ((i_out >= 0 && p[i_out].revents) || (i_err >= 0 && p[i_err].revents));
      if (active) quiet_since = now_ms();
      int open_streams = c.out >= 0 || c.err >= 0;
      int waiting_credit = open_streams && c.out_credit == 0;
      long now = now_ms();
      int past = c.after_exit > AFTER_EXIT_MAX || (!waiting_credit && now - c.exited_at >= AFTER_EXIT_MS);
      if (!open_streams || (!c.file && (past || (!waiting_credit && now - quiet_since >= 50)))) {
        /*
         * What the command started in the background runs on (as after an
         * SSH exec: `sh -c 'server &'`), but its output goes nowhere now.
         */
        close_fd(&c.out), close_fd(&c.err), close_fd(&c.in);
        if (exit_frame(port, c.status) != 0) alive = 0;
        running = 0;
        memset(&c, 0, sizeof c);
        c.pid = -1, c.in = -1, c.out = -1, c.err = -1;
      }
    }
  }
  if (running) {
    hang_up(&c);
    close_fd(&c.out), close_fd(&c.err), close_fd(&c.in);
  }
  if (sfd >= 0) close(sfd);
  sigprocmask(SIG_UNBLOCK, &chld, NULL);
  return new_host;
}
