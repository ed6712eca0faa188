/*
 * The frames of skiff's own guest protocol, as native.c reads them off a
 * port, and what an EXEC frame asks for. Apart from native.c so the
 * golden tests (guest/test/golden.c) run this very code on what the
 * host's encoders (src/guest/native/frames.ts) write.
 */
#include "skiff-init.h"

uint32_t be32(const unsigned char *p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

void put32(unsigned char *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

/*
 * Feed bytes read from the port. Returns 1 with a whole frame in r (its
 * payload r->payload[0..r->len)), 0 when more is needed, -1 when a length
 * is out of bounds (the caller ends the session: the framing is lost).
 * `*used` says how many of `data` were taken. Start each frame with
 * r->have = 0.
 */
int frame_feed(struct frame_reader *r, const unsigned char *data, size_t n, size_t *used) {
  size_t i = 0;
  while (i < n) {
    if (r->have < 5) {
      r->head[r->have++] = data[i++];
      if (r->have == 5) {
        r->len = be32(r->head);
        if (r->len > MAX_FRAME) {
          *used = i;
          return -1;
        }
        if (r->len == 0) {
          *used = i;
          return 1;
        }
      }
      continue;
    }
    size_t want = 5 + r->len - r->have;
    size_t take = n - i < want ? n - i : want;
    memcpy(r->payload + (r->have - 5), data + i, take);
    r->have += take;
    i += take;
    if (r->have == 5 + r->len) {
      *used = i;
      return 1;
    }
  }
  *used = i;
  return 0;
}

/*
 * An EXEC payload: request.c's records (into a copy `call` owns), and
 * beyond them (request.c skips them) t=TERM for a PTY, r=ROWS and c=COLS.
 * No records at all asks for the user's login shell. -1 with `err` set
 * when the request is refused.
 */
int parse_exec(const unsigned char *payload, size_t len, struct exec_call *call, char *err, size_t errcap) {
  if (len > MAX_FRAME) return refuse(err, errcap, "request of %zu bytes is longer than %d", len, MAX_FRAME);
  memset(call, 0, sizeof *call);
  memcpy(call->data, payload, len);
  call->data[len] = 0;
  call->rows = 24;
  call->cols = 80;
  for (size_t i = 0; i < len;) {
    const char *rec = call->data + i;
    size_t rlen = strnlen(rec, len - i);
    if (rlen >= 2 && rec[1] == '=' && (rec[0] == 't' || rec[0] == 'r' || rec[0] == 'c')) {
      const char *v = rec + 2;
      if (rlen - 2 >= sizeof call->term) return refuse(err, errcap, "%c= record of %zu bytes", rec[0], rlen - 2);
      if (rec[0] == 't') {
        call->tty = 1;
        memcpy(call->term, v, rlen - 2);
        call->term[rlen - 2] = 0;
      } else {
        char *end;
        unsigned long n = strtoul(v, &end, 10);
        if (*end || end == v || n > 0xffff) return refuse(err, errcap, "bad terminal size %s", v);
        if (rec[0] == 'r') call->rows = (unsigned short)n;
        else call->cols = (unsigned short)n;
      }
    }
    i += rlen + 1;
  }
  return parse_request(call->data, len, &call->req, err, errcap);
}
