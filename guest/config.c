/*
 * What the host writes into the initramfs for init to read
 * (src/guest/initramfs.ts): /skiff/config, key=value lines
 * (renderGuestConfig), and /skiff/env, the VM's environment. Parsing only:
 * the callers act on what these return, and the golden tests
 * (test/unit/guest-golden*.test.ts) run these same functions on the
 * host's output.
 */
#include "skiff-init.h"

char *config_text;

/* Value of the first line `key=...` of `text` (key=value lines), copied; NULL when absent. */
char *config_value(const char *text, const char *key) {
  if (!text) return NULL;
  size_t klen = strlen(key);
  for (const char *line = text; line && *line;) {
    const char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=')
      return strndup(line + klen + 1, len - klen - 1);
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

/* The same in /skiff/config. */
char *config_get(const char *key) { return config_value(config_text, key); }

/* `debug=1`: log each boot step with the guest's uptime. */
int config_debug(void) {
  char *debug = config_get("debug");
  int on = debug != NULL && strcmp(debug, "1") == 0;
  free(debug);
  return on;
}

/* `agent.ports=N`: how many agent ports init waits for (1 when not said); -1 with `err` set when more than it can serve. */
int config_agent_ports(char *err, size_t errcap) {
  char *text = config_get("agent.ports");
  int expected = text ? atoi(text) : 1;
  free(text);
  if (expected > MAX_PORTS) {
    snprintf(err, errcap, "agent.ports: %d ports, more than the %d skiff-init serves", expected, MAX_PORTS);
    return -1;
  }
  return expected;
}

/* The value of `PREFIX.N=` in `text` (its key in `key`, for messages); NULL when absent. */
static char *numbered(const char *text, const char *prefix, int n, char *key, size_t keycap) {
  snprintf(key, keycap, "%s.%d", prefix, n);
  return config_value(text, key);
}

/* The next field of `*p` up to a space (or the end) into `out`: -1 when empty or too long for it, never cut. */
static int field(const char **p, char *out, size_t cap) {
  size_t n = strcspn(*p, " ");
  if (n == 0 || n >= cap) return -1;
  memcpy(out, *p, n);
  out[n] = 0;
  *p += n;
  if (**p == ' ') (*p)++;
  return 0;
}

/* Whether `PREFIX.MAX=` is there: more entries than the guest takes, refused rather than cut. */
static int too_many(const char *text, const char *prefix, int max, const char *what, char *err, size_t errcap) {
  char key[16];
  char *v = numbered(text, prefix, max, key, sizeof key);
  if (!v) return 0;
  free(v);
  snprintf(err, errcap, "%s: more than %d %s, the most skiff-init takes", key, max, what);
  return 1;
}

/*
 * `nic.0=` … `nic.15=` of `text`, each `MAC NAME ADDRESS/PREFIX`, into
 * `nics` (MAX_NICS long): the boot config's and a new identity's
 * (identity.c). Returns how many, or -1 with `err` set when one is
 * malformed or there are more.
 */
int parse_nics(const char *text, struct nic_config nics[MAX_NICS], char *err, size_t errcap) {
  err[0] = 0;
  int n = 0;
  for (; n < MAX_NICS; n++) {
    char key[16];
    char *v = numbered(text, "nic", n, key, sizeof key);
    if (!v) break;
    const char *p = v;
    int ok = field(&p, nics[n].mac, sizeof nics[n].mac) == 0 && field(&p, nics[n].name, sizeof nics[n].name) == 0 &&
             field(&p, nics[n].addr, sizeof nics[n].addr) == 0 && *p == 0;
    if (!ok) snprintf(err, errcap, "bad %s: %s", key, v);
    free(v);
    if (!ok) return -1;
  }
  return too_many(text, "nic", MAX_NICS, "NICs", err, errcap) ? -1 : n;
}

int config_nics(struct nic_config nics[MAX_NICS], char *err, size_t errcap) { return parse_nics(config_text, nics, err, errcap); }

/*
 * `mount.0=` … `mount.15=`, each `9p|ext4 SOURCE ro|rw TARGET`, the target
 * last (it may hold spaces), into `mounts` (MAX_MOUNTS long). Returns how
 * many, or -1 with `err` set when one is malformed or there are more. Each
 * mount's `line` is the caller's to free.
 */
int config_mounts(struct mount_config mounts[MAX_MOUNTS], char *err, size_t errcap) {
  err[0] = 0;
  int n = 0;
  for (; n < MAX_MOUNTS; n++) {
    char key[16];
    char *v = numbered(config_text, "mount", n, key, sizeof key);
    if (!v) break;
    struct mount_config *m = &mounts[n];
    const char *p = v;
    if (field(&p, m->fs, sizeof m->fs) != 0 || field(&p, m->source, sizeof m->source) != 0 || field(&p, m->mode, sizeof m->mode) != 0 ||
        *p != '/' || (strcmp(m->fs, "9p") != 0 && strcmp(m->fs, "ext4") != 0) || (strcmp(m->mode, "ro") != 0 && strcmp(m->mode, "rw") != 0)) {
      snprintf(err, errcap, "bad %s: %s", key, v);
      free(v);
      while (n > 0) free(mounts[--n].line);
      return -1;
    }
    m->line = v;
    m->target = p;
  }
  if (too_many(config_text, "mount", MAX_MOUNTS, "mounts", err, errcap)) {
    while (n > 0) free(mounts[--n].line);
    return -1;
  }
  return n;
}

/* resolv.conf for `dns=`, space-separated nameservers: every one of them. */
char *resolv_conf(const char *dns) {
  char *list = strdup(dns);
  size_t cap = strlen(dns) * 12 + 1; /* "nameserver " and "\n" for each, at most one a character */
  char *buf = malloc(cap);
  size_t n = 0;
  buf[0] = 0;
  for (char *save = NULL, *ns = strtok_r(list, " ", &save); ns; ns = strtok_r(NULL, " ", &save))
    n += snprintf(buf + n, cap - n, "nameserver %s\n", ns);
  free(list);
  return buf;
}

/* `main.exec=skiff-exec:…` and `main.restart=`: the main command init runs itself. 1 when there is one. */
int config_main(char **exec, enum restart *restart) {
  *exec = config_get("main.exec");
  if (!*exec || strncmp(*exec, "skiff-exec:", 11) != 0) {
    free(*exec);
    *exec = NULL;
    return 0;
  }
  char *policy = config_get("main.restart");
  *restart = !policy || strcmp(policy, "no") == 0 ? RESTART_NO
             : strcmp(policy, "on-failure") == 0 ? RESTART_ON_FAILURE
                                                 : RESTART_ALWAYS; /* always, unless-stopped */
  free(policy);
  return 1;
}

/*
 * /skiff/env: the VM's environment, every command's, as NUL-terminated
 * `KEY=VALUE` records (a value may hold newlines). NULL-terminated,
 * pointing into `text`; a record without '=' is no variable and left out.
 */
char **env_entries(char *text, size_t len) {
  size_t cap = 16, n = 0;
  char **out = malloc(cap * sizeof *out);
  for (size_t i = 0; i < len;) {
    char *kv = text + i;
    i += strnlen(kv, len - i) + 1;
    if (!strchr(kv, '=')) continue;
    if (n + 1 >= cap) out = realloc(out, (cap *= 2) * sizeof *out);
    out[n++] = kv;
  }
  out[n] = NULL;
  return out;
}
