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
