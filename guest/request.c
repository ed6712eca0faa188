/*
 * What the host asks the guest to run (src/guest/exec-request.ts): the SSH
 * command `skiff-exec:<base64>`, or init's `main.exec=` line, carries
 * NUL-separated records, so argv and env arrive exactly as given.
 */
#include "skiff-init.h"

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

/* Append `v` to a list that holds `max`; one more is refused, not dropped. */
static int push(char **list, int *n, int max, char *v, const char *what, char *err, size_t errcap) {
  if (*n == max) {
    snprintf(err, errcap, "more than %d %s in one request", max, what);
    return -1;
  }
  list[(*n)++] = v;
  return 0;
}

/*
 * A request is NUL-separated records "u=USER", "w=DIR", "e=K=V", "p=PIDFILE",
 * "a=ARG". More arguments or variables than `req` holds are refused (-1,
 * said in `err`), never cut: the host refuses them first (guestLimits in
 * src/guest/limits.ts), so this only guards against a host that does not.
 */
int parse_request(char *data, size_t len, struct request *req, char *err, size_t errcap) {
  for (size_t i = 0; i < len;) {
    char *rec = data + i;
    size_t rlen = strnlen(rec, len - i);
    if (rlen >= 2 && rec[1] == '=') {
      char *v = rec + 2;
      switch (rec[0]) {
      case 'u':
        if (strlen(v) > MAX_REQUEST_USER) {
          snprintf(err, errcap, "user of %zu bytes, longer than %d", strlen(v), MAX_REQUEST_USER);
          return -1;
        }
        req->user = v;
        break;
      case 'w': req->cwd = v; break;
      case 'p':
        if (strlen(v) > MAX_PIDFILE || strchr(v, '/')) {
          snprintf(err, errcap, "bad pidfile name (at most %d bytes, no '/')", MAX_PIDFILE);
          return -1;
        }
        req->pidfile = v;
        break;
      case 'e':
        if (push(req->env, &req->nenv, MAX_REQUEST_ENV, v, "environment variables", err, errcap) != 0) return -1;
        break;
      case 'a':
        if (push(req->argv, &req->argc, MAX_REQUEST_ARGS, v, "arguments", err, errcap) != 0) return -1;
        break;
      }
    }
    i += rlen + 1;
  }
  req->env[req->nenv] = NULL;
  req->argv[req->argc] = NULL;
  return 0;
}

/*
 * `skiff-exec:<base64>` into `req`, whose strings point into a buffer of
 * this file (one request a process). -1 with `err` set when it is refused.
 */
int decode_request(const char *command, struct request *req, char *err, size_t errcap) {
  static char payload[MAX_REQUEST_BYTES + 1];
  const char *encoded = command + 11;
  /* At most MAX_REQUEST_BYTES decoded: longer is refused, never cut (dropbear takes 9000 bytes encoded; the host no more). */
  size_t digits = 0;
  for (const char *c = encoded; *c; c++) digits += b64val((unsigned char)*c) >= 0;
  if (digits * 6 / 8 > MAX_REQUEST_BYTES) {
    snprintf(err, errcap, "request of %zu bytes is longer than %d", digits * 6 / 8, MAX_REQUEST_BYTES);
    return -1;
  }
  size_t n = b64decode(encoded, payload);
  payload[n] = 0; /* the last record ends here */
  return parse_request(payload, n, req, err, errcap);
}

int read_shell_call(int argc, char **argv, struct shell_call *call, char *err, size_t errcap) {
  memset(call, 0, sizeof *call);
  if (argc >= 3 && strcmp(argv[1], "-c") == 0) call->command = argv[2];
  if (call->command && strncmp(call->command, "skiff-exec:", 11) == 0) {
    return decode_request(call->command, &call->req, err, errcap);
  } else if (call->command && strcmp(call->command, "/usr/lib/sftp-server") == 0) {
    call->sftp = 1;
  }
  return 0;
}
