/*
 * The start of a session on an agent port, after the relay answered
 * SKIFF-READY: the host repeats its HELLO until it sees the answer, so
 * copies of the line come first and are dropped. A HELLO with another
 * nonce is a new host: QEMU serves one client at a time, so the host that
 * was answered has gone, and its answer may have reached the new one (its
 * hang-up and the new host's connect can reach the guest together, with no
 * moment in which the port polls as hung up). The session then ends
 * without touching its process, and the relay answers the new host.
 * Pure: bytes in, a verdict out (guest/test/golden.c feeds it).
 */
#include "skiff-init.h"

static const char hello[] = "SKIFF-HELLO ";
#define HELLO_LEN (sizeof hello - 1)

void preamble_start(struct preamble *p, const char *answered) {
  memset(p, 0, sizeof *p);
  snprintf(p->answered, sizeof p->answered, "%s", answered);
}

int preamble_feed(struct preamble *p, const unsigned char *buf, size_t n, size_t *used) {
  for (size_t i = 0; i < n; i++) {
    char c = (char)buf[i];
    if (p->len < HELLO_LEN) {
      if (c != hello[p->len]) {
        /* Not a HELLO: the session's own bytes start with the ones held back (p->held, p->len). */
        *used = i;
        return PREAMBLE_END;
      }
      p->held[p->len++] = c;
      continue;
    }
    if (c == '\n') {
      p->held[p->len] = '\0';
      const char *nonce = p->held + HELLO_LEN;
      int other = !p->overlong && strcmp(nonce, p->answered) != 0;
      if (other) snprintf(p->fresh, sizeof p->fresh, "%s", nonce);
      p->len = 0;
      p->overlong = 0;
      if (other) {
        *used = i + 1;
        return PREAMBLE_NEW_HOST;
      }
      continue;
    }
    /* A nonce longer than any host sends: no host waits on it, and it is dropped with its line. */
    if (p->len < sizeof p->held - 1) p->held[p->len++] = c;
    else p->overlong = 1;
  }
  *used = n;
  return PREAMBLE_MORE;
}
