/*
 * A new identity for a running guest, told by the host on an agent port in
 * place of a HELLO (src/guest/identity.ts writes it): a VM restored from a
 * memory snapshot wakes up as its source, with the source's hostname, MACs,
 * addresses, /etc/hosts, clock and kernel random pool.
 *
 *   SKIFF-IDENTITY <nonce> <lowercase hex of the payload>
 *
 * The payload: `time=` (Unix ms), `seed=` (64 bytes in hex), `hostname=`,
 * `nic.N=` (as in /skiff/config), `gateway=`, then a line `--` and the whole
 * /etc/hosts. Parsing only, and the port's line reader: relay.c reads and
 * answers, identity-apply.c acts, and the golden tests run these same
 * functions on the host's output.
 */
#include "skiff-init.h"

#include <arpa/inet.h>

/*
 * Feed one byte of the port: 1 when it ended a line, which is then whole in
 * r->buf, NUL-terminated, until the next call. A line longer than
 * MAX_AGENT_LINE, or holding a NUL, is dropped whole, up to its newline:
 * cut (by the bound, or as a C string at the NUL), it could still parse and
 * be applied.
 */
int line_feed(struct line_reader *r, char c) {
  if (c == '\n') {
    int whole = !r->dropping && r->buf != NULL;
    if (whole) r->buf[r->len] = 0;
    line_reset(r);
    return whole;
  }
  if (r->dropping) return 0;
  if (r->len == MAX_AGENT_LINE || c == 0) {
    r->dropping = 1;
    r->len = 0;
    return 0;
  }
  if (r->len + 1 >= r->cap) { /* room for `c` and the NUL */
    size_t cap = r->cap ? r->cap * 2 : 128;
    if (cap > MAX_AGENT_LINE + 1) cap = MAX_AGENT_LINE + 1;
    char *buf = realloc(r->buf, cap);
    if (!buf) {
      r->dropping = 1;
      r->len = 0;
      return 0;
    }
    r->buf = buf;
    r->cap = cap;
  }
  r->buf[r->len++] = c;
  return 0;
}

/* Forget a partial line (its host has gone). */
void line_reset(struct line_reader *r) {
  r->len = 0;
  r->dropping = 0;
}

void line_free(struct line_reader *r) {
  free(r->buf);
  *r = (struct line_reader){0};
}

static const char prefix[] = "SKIFF-IDENTITY ";
#define PREFIX_LEN (sizeof prefix - 1)

static int hex_digit(char c) { return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1; }

/* `n` hex digits into n/2 bytes of `out`; the index of the first bad digit, or -1 when all are good (n even). */
static long unhex(const char *hex, size_t n, unsigned char *out) {
  for (size_t i = 0; i < n; i += 2) {
    int hi = hex_digit(hex[i]), lo = hex_digit(hex[i + 1]);
    if (hi < 0) return (long)i;
    if (lo < 0) return (long)i + 1;
    out[i / 2] = (unsigned char)(hi << 4 | lo);
  }
  return -1;
}

/* The nonce of a `SKIFF-IDENTITY <nonce> …` line: 0, or -1 when it has none of 24 lowercase hex digits (nothing to answer to). */
int identity_nonce(const char *line, char nonce[NONCE_LEN + 1]) {
  if (strncmp(line, prefix, PREFIX_LEN) != 0) return -1;
  const char *p = line + PREFIX_LEN;
  for (int i = 0; i < NONCE_LEN; i++)
    if (hex_digit(p[i]) < 0) return -1;
  if (p[NONCE_LEN] != ' ' && p[NONCE_LEN] != 0) return -1;
  memcpy(nonce, p, NONCE_LEN);
  nonce[NONCE_LEN] = 0;
  return 0;
}

/* `MAC NAME ADDR/PREFIX`, each as `ip` takes it: nothing it could read as an option or a keyword. */
static int check_nic(const struct nic_config *nic, int i, char *err, size_t errcap) {
  const char *m = nic->mac;
  int mac_ok = strlen(m) == 17;
  for (int j = 0; mac_ok && j < 17; j++) mac_ok = j % 3 == 2 ? m[j] == ':' : strchr("0123456789abcdefABCDEF", m[j]) != NULL;
  if (!mac_ok) return refuse(err, errcap, "nic.%d: bad MAC %s", i, m);
  int name_ok = nic->name[0] != '-';
  for (const char *c = nic->name; name_ok && *c; c++) name_ok = strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-", *c) != NULL;
  if (!name_ok) return refuse(err, errcap, "nic.%d: bad interface name %s", i, nic->name);
  char addr[sizeof nic->addr];
  snprintf(addr, sizeof addr, "%s", nic->addr);
  char *slash = strchr(addr, '/');
  unsigned char bin[16];
  int family = slash && strchr(addr, ':') ? AF_INET6 : AF_INET;
  if (slash) *slash = 0;
  const char *len = slash ? slash + 1 : "";
  int prefix_ok = strlen(len) >= 1 && strlen(len) <= 3 && strspn(len, "0123456789") == strlen(len) && atoi(len) <= (family == AF_INET ? 32 : 128);
  if (!prefix_ok || inet_pton(family, addr, bin) != 1) return refuse(err, errcap, "nic.%d: bad address %s (ADDR/PREFIX)", i, nic->addr);
  return 0;
}

/* The header's lines: known keys only, each once (`nic.N` aside); how many nic.N lines, or -1. */
static int check_keys(const char *header, char *err, size_t errcap) {
  static const char *const once[] = {"time", "seed", "hostname", "gateway", "warm"};
  enum { n_once = sizeof once / sizeof once[0] };
  int seen[n_once] = {0}, nics = 0;
  for (const char *line = header; *line;) {
    size_t len = strcspn(line, "\n");
    size_t klen = strcspn(line, "=\n");
    if (klen == len) return refuse(err, errcap, "not KEY=VALUE: %.*s", (int)(len > 64 ? 64 : len), line);
    int known = 0;
    for (int i = 0; i < n_once && !known; i++) {
      if (klen != strlen(once[i]) || strncmp(line, once[i], klen) != 0) continue;
      if (seen[i]++) return refuse(err, errcap, "%s= given twice", once[i]);
      known = 1;
    }
    if (!known && klen > 4 && klen < 8 && strncmp(line, "nic.", 4) == 0 && strspn(line + 4, "0123456789") == klen - 4) {
      nics++;
      known = 1;
    }
    if (!known) return refuse(err, errcap, "unknown key %.*s", (int)(klen > 64 ? 64 : klen), line);
    line += len + (line[len] == '\n');
  }
  return nics;
}

/* The header's value of `key` into `out`, of 1 to cap-1 bytes of `allowed` (NULL: any visible character); -1 when absent or not so. */
static int value(const char *header, const char *key, char *out, size_t cap, const char *allowed, char *err, size_t errcap) {
  char *v = config_value(header, key);
  if (!v) return refuse(err, errcap, "no %s=", key);
  size_t n = strlen(v);
  int ok = n >= 1 && n < cap;
  for (size_t i = 0; ok && i < n; i++) ok = allowed ? strchr(allowed, v[i]) != NULL : v[i] > ' ' && v[i] < 0x7f;
  if (ok) memcpy(out, v, n + 1);
  else refuse(err, errcap, "bad %s=%.*s", key, (int)(n > 64 ? 64 : n), v);
  free(v);
  return ok ? 0 : -1;
}

/* The decoded payload in id->text: its fields into `id`, every one checked. */
static int parse_payload(struct identity *id, char *err, size_t errcap) {
  char *text = id->text;
  char *sep = NULL; /* the line `--` */
  for (char *line = text; line && !sep;) {
    if (strncmp(line, "--", 2) == 0 && (line[2] == '\n' || line[2] == 0)) sep = line;
    line = strchr(line, '\n');
    if (line) line++;
  }
  if (!sep) return refuse(err, errcap, "no line -- before /etc/hosts");
  id->hosts = sep[2] ? sep + 3 : sep + 2;
  *sep = 0; /* `text` is now the header */
  int nic_lines = check_keys(text, err, errcap);
  if (nic_lines < 0) return -1;

  char num[16], seed[2 * sizeof id->seed + 1];
  if (value(text, "time", num, sizeof num, "0123456789", err, errcap) != 0) return -1;
  id->time_ms = strtoll(num, NULL, 10);
  if (value(text, "seed", seed, sizeof seed, "0123456789abcdef", err, errcap) != 0) return -1;
  if (strlen(seed) != 2 * sizeof id->seed) return refuse(err, errcap, "seed= of %zu hex digits, not %zu", strlen(seed), 2 * sizeof id->seed);
  unhex(seed, strlen(seed), id->seed);
  if (value(text, "hostname", id->hostname, sizeof id->hostname, NULL, err, errcap) != 0) return -1;

  id->nnics = parse_nics(text, id->nics, err, errcap);
  if (id->nnics < 0) return -1;
  if (id->nnics != nic_lines) return refuse(err, errcap, "nic.N lines not numbered 0, 1, 2, … once each");
  for (int i = 0; i < id->nnics; i++)
    if (check_nic(&id->nics[i], i, err, errcap) != 0) return -1;

  char *warm = config_value(text, "warm");
  int warm_ok = !warm || strcmp(warm, "0") == 0 || strcmp(warm, "1") == 0;
  id->warm = warm && strcmp(warm, "1") == 0;
  if (!warm_ok) refuse(err, errcap, "bad warm=%.*s (0 or 1)", 64, warm);
  free(warm);
  if (!warm_ok) return -1;

  char *gw = config_value(text, "gateway");
  unsigned char bin[4];
  int gw_ok = !gw || (strlen(gw) < sizeof id->gateway && inet_pton(AF_INET, gw, bin) == 1);
  if (gw && gw_ok) memcpy(id->gateway, gw, strlen(gw) + 1);
  if (!gw_ok) refuse(err, errcap, "bad gateway=%.*s", 64, gw);
  free(gw);
  return gw_ok ? 0 : -1;
}

/*
 * A whole `SKIFF-IDENTITY <nonce> <hex>` line (its nonce checked by
 * identity_nonce) into `id`: 0, or -1 with `err` set, when the hex is not
 * strict lowercase hex of at most MAX_IDENTITY_HEX digits or the payload is
 * malformed or more than the guest takes. identity_free in both cases.
 */
int identity_decode(const char *line, struct identity *id, char *err, size_t errcap) {
  *id = (struct identity){0};
  const char *hex = line + PREFIX_LEN + NONCE_LEN;
  if (*hex != ' ') return refuse(err, errcap, "no payload");
  hex++;
  size_t n = strlen(hex);
  if (n > MAX_IDENTITY_HEX) return refuse(err, errcap, "payload of %zu hex digits, more than %d", n, MAX_IDENTITY_HEX);
  if (n % 2) return refuse(err, errcap, "payload of an odd number of hex digits (%zu)", n);
  id->text = malloc(n / 2 + 1);
  if (!id->text) return refuse(err, errcap, "out of memory");
  long bad = unhex(hex, n, (unsigned char *)id->text);
  if (bad >= 0) return refuse(err, errcap, "payload: not a lowercase hex digit at %ld", bad);
  id->text[n / 2] = 0;
  if (strlen(id->text) != n / 2) return refuse(err, errcap, "payload holds a NUL byte");
  return parse_payload(id, err, errcap);
}

/* The line the relay answers: OK, or ERR with `err` on one line of visible ASCII. */
void identity_answer(char *out, size_t cap, const char *nonce, const char *err) {
  if (!err) {
    snprintf(out, cap, "SKIFF-IDENTITY-OK %s\n", nonce);
    return;
  }
  int n = snprintf(out, cap, "SKIFF-IDENTITY-ERR %s ", nonce);
  if (n < 0 || (size_t)n >= cap - 1) n = (int)cap - 2;
  for (const char *c = err; *c && (size_t)n < cap - 2; c++) out[n++] = *c >= ' ' && *c < 0x7f ? *c : '?';
  out[n++] = '\n';
  out[n] = 0;
}

void identity_free(struct identity *id) {
  free(id->text);
  id->text = NULL;
  id->hosts = NULL;
}
