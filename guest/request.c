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

size_t b64decode(const char *in, char *out) {
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

/* A request is NUL-separated records "u=USER", "w=DIR", "e=K=V", "p=PIDFILE", "a=ARG". */
void parse_request(char *data, size_t len, struct request *req) {
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

/* `skiff-exec:<base64>` into `req`, whose strings point into a buffer of this file: one request a process. */
void decode_request(const char *command, struct request *req) {
  static char payload[CONFIG_MAX];
  size_t n = b64decode(command + 11, payload);
  parse_request(payload, n, req);
}

void read_shell_call(int argc, char **argv, struct shell_call *call) {
  memset(call, 0, sizeof *call);
  if (argc >= 3 && strcmp(argv[1], "-c") == 0) call->command = argv[2];
  if (call->command && strncmp(call->command, "skiff-exec:", 11) == 0) {
    decode_request(call->command, &call->req);
  } else if (call->command && strcmp(call->command, "/usr/lib/sftp-server") == 0) {
    call->sftp = 1;
  }
}
