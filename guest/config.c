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

/* Value of the first line `key=...`, copied; NULL when absent. */
char *config_get(const char *key) {
  if (!config_text) return NULL;
  size_t klen = strlen(key);
  for (char *line = config_text; line && *line;) {
    char *end = strchr(line, '\n');
    size_t len = end ? (size_t)(end - line) : strlen(line);
    if (len > klen && strncmp(line, key, klen) == 0 && line[klen] == '=')
      return strndup(line + klen + 1, len - klen - 1);
    line = end ? end + 1 : NULL;
  }
  return NULL;
}

/* `debug=1`: log each boot step with the guest's uptime. */
int config_debug(void) {
  char *debug = config_get("debug");
  int on = debug != NULL && strcmp(debug, "1") == 0;
  free(debug);
  return on;
}

/* `agent.ports=N`: how many agent ports init waits for (1 when not said). */
int config_agent_ports(void) {
  char *text = config_get("agent.ports");
  int expected = text ? atoi(text) : 1;
  free(text);
  return expected;
}

/* The value of `PREFIX.N=` (its key in `key`, for messages); NULL when absent. */
static char *numbered(const char *prefix, int n, char *key, size_t keycap) {
  snprintf(key, keycap, "%s.%d", prefix, n);
  return config_get(key);
}

/* `nic.0=`, `nic.1=`, … each `MAC NAME ADDRESS/PREFIX`; stops at the first absent or malformed one (said in `err`). */
int config_nics(struct nic_config *nics, int cap, char *err, size_t errcap) {
  err[0] = 0;
  int n = 0;
  for (; n < cap; n++) {
    char key[16];
    char *v = numbered("nic", n, key, sizeof key);
    if (!v) break;
    if (sscanf(v, "%31s %15s %63s", nics[n].mac, nics[n].name, nics[n].addr) != 3) {
      snprintf(err, errcap, "bad %s: %s", key, v);
      free(v);
      break;
    }
    free(v);
  }
  return n;
}

/*
 * `mount.0=`, `mount.1=`, … each `FS SOURCE ro|rw TARGET`, the target last
 * (it may hold spaces). Returns how many, or -1 with `err` set when one is
 * malformed. Each mount's `line` is the caller's to free.
 */
int config_mounts(struct mount_config *mounts, int cap, char *err, size_t errcap) {
  err[0] = 0;
  int n = 0;
  for (; n < cap; n++) {
    char key[16];
    char *v = numbered("mount", n, key, sizeof key);
    if (!v) break;
    struct mount_config *m = &mounts[n];
    int off = 0;
    if (sscanf(v, "%15s %63s %3s %n", m->fs, m->source, m->mode, &off) != 3 || off == 0 || v[off] != '/') {
      snprintf(err, errcap, "bad %s: %s", key, v);
      free(v);
      return -1;
    }
    m->line = v;
    m->target = v + off;
  }
  return n;
}

/* resolv.conf for `dns=`, space-separated nameservers. */
char *resolv_conf(const char *dns) {
  char *list = strdup(dns);
  char *buf = malloc(512);
  size_t n = 0;
  buf[0] = 0;
  for (char *save = NULL, *ns = strtok_r(list, " ", &save); ns && n < 512 - 64; ns = strtok_r(NULL, " ", &save))
    n += snprintf(buf + n, 512 - n, "nameserver %s\n", ns);
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

/* /skiff/env: `KEY=VALUE` lines, every command's environment; NULL-terminated, pointing into `text`. */
char **env_entries(char *text) {
  size_t cap = 16, n = 0;
  char **out = malloc(cap * sizeof *out);
  for (char *save = NULL, *kv = strtok_r(text, "\n", &save); kv; kv = strtok_r(NULL, "\n", &save)) {
    if (!strchr(kv, '=')) continue;
    if (n + 1 >= cap) out = realloc(out, (cap *= 2) * sizeof *out);
    out[n++] = kv;
  }
  out[n] = NULL;
  return out;
}
