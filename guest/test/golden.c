/*
 * Test-only main for the golden tests (test/unit/guest-golden*.test.ts):
 * runs skiff-init's own parsers on what the host's encoders wrote and
 * prints what they understood as JSON, every string as hex of its bytes
 * (so NULs, newlines and bytes that are not UTF-8 come back exactly).
 * Not part of skiff-init; built by the tests with the host's gcc from
 * this file, config.c, identity.c, request.c, start-scripts.c and util.c.
 *
 *   golden shell [-c COMMAND]   what skiff-shell makes of its arguments
 *   golden config DIR           what init makes of DIR/config, DIR/env, DIR/hosts
 *                               (DIR: the /skiff of the per-VM archive, unpacked)
 *   golden start-scripts DIR    the scripts init starts from DIR (an image's start.d)
 *   golden netlink OP ARGS      one of netlink.c's calls (mac, address, rename, up, route), run in a network namespace
 *   golden frames CHUNK         what native.c makes of the frames on stdin, read CHUNK bytes at a time
 *   golden preamble NONCE CHUNK what a session answered with NONCE makes of the bytes on stdin
 *                               before it begins, read CHUNK bytes at a time (greeting.c)
 *   golden identity             what a relay makes of the lines on stdin (an agent port):
 *                               a JSON line for each whole line, an identity's with
 *                               what it understood and the answer it would send
 */
#include "../skiff-init.h"

static void hex(const char *s, size_t n) {
  putchar('"');
  for (size_t i = 0; i < n; i++) printf("%02x", (unsigned char)s[i]);
  putchar('"');
}

static void str(const char *s) {
  if (s) hex(s, strlen(s));
  else fputs("null", stdout);
}

static void list(char *const *items, int n) {
  putchar('[');
  for (int i = 0; i < n; i++) {
    if (i) putchar(',');
    str(items[i]);
  }
  putchar(']');
}

/* {"k0":"v0",…}: an object of string fields. */
static void object(int n, const char *const keys[], const char *const values[]) {
  for (int i = 0; i < n; i++) {
    printf("%s\"%s\":", i ? "," : "{", keys[i]);
    str(values[i]);
  }
  putchar('}');
}

static void request(const struct request *req) {
  fputs("{\"user\":", stdout);
  str(req->user);
  fputs(",\"cwd\":", stdout);
  str(req->cwd);
  fputs(",\"pidfile\":", stdout);
  str(req->pidfile);
  fputs(",\"env\":", stdout);
  list(req->env, req->nenv);
  fputs(",\"argv\":", stdout);
  list(req->argv, req->argc);
  printf(",\"argvNull\":%s,\"envNull\":%s}", req->argv[req->argc] ? "false" : "true", req->env[req->nenv] ? "false" : "true");
}

/* A refusal: the guest's reason on stderr, exit 1. */
static int refused(const char *err) {
  fprintf(stderr, "%s\n", err);
  return 1;
}

static int shell(int argc, char **argv) {
  struct shell_call call;
  char err[256];
  if (read_shell_call(argc, argv, &call, err, sizeof err) != 0) return refused(err);
  fputs("{\"command\":", stdout);
  str(call.command);
  printf(",\"sftp\":%s,\"request\":", call.sftp ? "true" : "false");
  request(&call.req);
  puts("}");
  return 0;
}

static char *file_in(const char *dir, const char *name, size_t *len) {
  char path[4096];
  snprintf(path, sizeof path, "%s/%s", dir, name);
  return read_file(path, len);
}

static void value(const char *key) {
  char *v = config_get(key);
  str(v);
  free(v);
}

static int config(const char *dir) {
  config_text = file_in(dir, "config", NULL);
  if (!config_text) {
    perror("config");
    return 2;
  }
  char err[256];
  int ports = config_agent_ports(err, sizeof err);
  if (ports < 0) return refused(err);
  struct nic_config nics[MAX_NICS];
  int n = config_nics(nics, err, sizeof err);
  if (n < 0) return refused(err);
  struct mount_config mounts[MAX_MOUNTS];
  int m = config_mounts(mounts, err, sizeof err);
  if (m < 0) return refused(err);
  char *exec;
  enum restart restart;
  int has_main = config_main(&exec, &restart);
  struct request req = {0};
  if (has_main && decode_request(exec, &req, err, sizeof err) != 0) return refused(err);

  fputs("{\"hostname\":", stdout);
  value("hostname");
  printf(",\"debug\":%s,\"agentPorts\":%d", config_debug() ? "true" : "false", ports);
  fputs(",\"nics\":[", stdout);
  for (int i = 0; i < n; i++) {
    if (i) putchar(',');
    object(3, (const char *const[]){"mac", "name", "addr"}, (const char *const[]){nics[i].mac, nics[i].name, nics[i].addr});
  }
  fputs("],\"gateway\":", stdout);
  value("gateway");

  char *dns = config_get("dns");
  fputs(",\"resolvConf\":", stdout);
  char *resolv = dns ? resolv_conf(dns) : NULL;
  str(resolv);
  free(resolv);
  free(dns);

  fputs(",\"mounts\":[", stdout);
  for (int i = 0; i < m; i++) {
    if (i) putchar(',');
    const struct mount_config *mt = &mounts[i];
    object(4, (const char *const[]){"fs", "source", "mode", "target"}, (const char *const[]){mt->fs, mt->source, mt->mode, mt->target});
  }
  putchar(']');

  fputs(",\"main\":", stdout);
  if (has_main) {
    static const char *const names[] = {"no", "on-failure", "always"};
    printf("{\"restart\":\"%s\",\"request\":", names[restart]);
    request(&req);
    putchar('}');
  } else {
    fputs("null", stdout);
  }

  size_t env_len = 0;
  char *env = file_in(dir, "env", &env_len);
  fputs(",\"env\":", stdout);
  if (env) {
    char **entries = env_entries(env, env_len);
    int count = 0;
    while (entries[count]) count++;
    list(entries, count);
  } else {
    fputs("null", stdout);
  }

  size_t hosts_len = 0;
  char *hosts = file_in(dir, "hosts", &hosts_len);
  fputs(",\"hosts\":", stdout);
  if (hosts) hex(hosts, hosts_len);
  else fputs("null", stdout);
  puts("}");
  return 0;
}

static int scripts(const char *dir) {
  int n;
  char **names = start_scripts(dir, &n);
  list(names, n);
  putchar('\n');
  return 0;
}

static void identity_json(const struct identity *id) {
  printf("{\"time\":%lld,\"seed\":", id->time_ms);
  hex((const char *)id->seed, sizeof id->seed);
  fputs(",\"hostname\":", stdout);
  str(id->hostname);
  fputs(",\"nics\":[", stdout);
  for (int i = 0; i < id->nnics; i++) {
    if (i) putchar(',');
    const struct nic_config *n = &id->nics[i];
    object(3, (const char *const[]){"mac", "name", "addr"}, (const char *const[]){n->mac, n->name, n->addr});
  }
  fputs("],\"gateway\":", stdout);
  str(id->gateway[0] ? id->gateway : NULL);
  fputs(",\"hosts\":", stdout);
  hex(id->hosts, strlen(id->hosts));
  printf(",\"warm\":%s}", id->warm ? "true" : "false");
}

/* As relay.c's await_hello reads the port, without acting: {"other":LINE} or {"answer":LINE|null,"identity":{…}|null}. */
static int identities(void) {
  struct line_reader line = {0};
  int c;
  while ((c = getchar()) != EOF) {
    if (!line_feed(&line, (char)c)) continue;
    if (strncmp(line.buf, "SKIFF-IDENTITY ", 15) != 0) {
      fputs("{\"other\":", stdout);
      str(line.buf);
      puts("}");
      continue;
    }
    char nonce[NONCE_LEN + 1];
    if (identity_nonce(line.buf, nonce) != 0) {
      puts("{\"answer\":null,\"identity\":null}");
      continue;
    }
    struct identity id;
    char err[256], answer[320];
    int r = identity_decode(line.buf, &id, err, sizeof err);
    identity_answer(answer, sizeof answer, nonce, r == 0 ? NULL : err);
    fputs("{\"answer\":", stdout);
    str(answer);
    fputs(",\"identity\":", stdout);
    if (r == 0) identity_json(&id);
    else fputs("null", stdout);
    puts("}");
    identity_free(&id);
  }
  line_free(&line);
  return 0;
}

/*
 * As native.c reads a port: stdin fed to frame_feed `chunk` bytes at a
 * time; a JSON line for each frame, an EXEC's with what parse_exec made
 * of it ({"type":N,"payload":HEX[,"exec":{…}|"refused":TEXT]}); a length
 * out of bounds ends it with {"error":"length N"} and exit 1.
 */
static int frames(size_t chunk) {
  static unsigned char payload[MAX_FRAME];
  static unsigned char input[4 * MAX_FRAME + 64];
  static struct exec_call call;
  size_t n = fread(input, 1, sizeof input, stdin);
  struct frame_reader r = {.payload = payload};
  for (size_t off = 0; off < n;) {
    size_t len = n - off < chunk ? n - off : chunk, used = 0;
    while (used < len) {
      size_t took;
      int f = frame_feed(&r, input + off + used, len - used, &took);
      used += took;
      if (f < 0) {
        printf("{\"error\":\"length %u\"}\n", r.len);
        return 1;
      }
      if (f == 0) continue;
      printf("{\"type\":%d,\"payload\":", r.head[4]);
      hex((const char *)payload, r.len);
      if (r.head[4] == F_EXEC) {
        char err[256];
        if (parse_exec(payload, r.len, &call, err, sizeof err) != 0) {
          fputs(",\"refused\":", stdout);
          str(err);
        } else {
          fputs(",\"exec\":{\"request\":", stdout);
          request(&call.req);
          printf(",\"tty\":%s,\"term\":", call.tty ? "true" : "false");
          str(call.term);
          printf(",\"rows\":%u,\"cols\":%u}", call.rows, call.cols);
        }
      }
      puts("}");
      r.have = 0;
    }
    off += len;
  }
  if (r.have > 0) printf("{\"partial\":%zu}\n", r.have);
  return 0;
}

/* netlink.c's calls, for a test in a network namespace of its own: prints "ok" or the reason, exit 0 or 1. */
static int netlink(int argc, char **argv) {
  char err[256] = "";
  int r = -1;
  if (argc == 4 && strcmp(argv[1], "mac") == 0) r = nl_set_mac(argv[2], argv[3], err, sizeof err);
  else if (argc == 4 && strcmp(argv[1], "address") == 0) r = nl_readdress(argv[2], argv[3], err, sizeof err);
  else if (argc == 4 && strcmp(argv[1], "rename") == 0) r = nl_rename(argv[2], argv[3], err, sizeof err);
  else if (argc == 3 && strcmp(argv[1], "up") == 0) r = nl_link_up(argv[2], err, sizeof err);
  else if (argc == 3 && strcmp(argv[1], "route") == 0) r = nl_default_route(argv[2], err, sizeof err);
  else snprintf(err, sizeof err, "usage: golden netlink mac|address|rename DEV ARG, up DEV, route GW");
  puts(r == 0 ? "ok" : err);
  return r == 0 ? 0 : 1;
}

/*
 * The session's start on the bytes of stdin: one JSON line, how the
 * preamble ended ("more": still in it, "end": the session's own bytes
 * begin, "new": another host's HELLO) and, for end and new, the bytes the
 * session would go on with (held back and the rest of the input), for new
 * the new nonce.
 */
static int preamble(const char *nonce, size_t chunk) {
  static unsigned char input[65536];
  size_t n = fread(input, 1, sizeof input, stdin);
  struct preamble p;
  preamble_start(&p, nonce);
  for (size_t off = 0; off < n;) {
    size_t len = n - off < chunk ? n - off : chunk, used;
    int v = preamble_feed(&p, input + off, len, &used);
    off += used;
    if (v == PREAMBLE_MORE) continue;
    printf("{\"verdict\":\"%s\",\"held\":", v == PREAMBLE_END ? "end" : "new");
    hex(v == PREAMBLE_END ? p.held : "", v == PREAMBLE_END ? p.len : 0);
    fputs(",\"rest\":", stdout);
    hex((const char *)input + off, n - off);
    fputs(",\"fresh\":", stdout);
    str(v == PREAMBLE_NEW_HOST ? p.fresh : NULL);
    puts("}");
    return 0;
  }
  puts("{\"verdict\":\"more\"}");
  return 0;
}

int main(int argc, char **argv) {
  if (argc >= 2 && strcmp(argv[1], "shell") == 0) return shell(argc - 1, argv + 1);
  if (argc == 3 && strcmp(argv[1], "config") == 0) return config(argv[2]);
  if (argc == 3 && strcmp(argv[1], "start-scripts") == 0) return scripts(argv[2]);
  if (argc == 2 && strcmp(argv[1], "identity") == 0) return identities();
  if (argc >= 2 && strcmp(argv[1], "netlink") == 0) return netlink(argc - 1, argv + 1);
  if (argc == 4 && strcmp(argv[1], "preamble") == 0) return preamble(argv[2], (size_t)atoi(argv[3]) > 0 ? (size_t)atoi(argv[3]) : 1);
  if (argc == 3 && strcmp(argv[1], "frames") == 0) return frames((size_t)atoi(argv[2]) > 0 ? (size_t)atoi(argv[2]) : 1);
  fprintf(stderr, "usage: golden shell [-c COMMAND] | golden config DIR | golden start-scripts DIR | golden identity\n");
  return 2;
}
