/*
 * What the files of skiff-init share: the paths of its world, the helpers
 * every role uses, and the entry points one role calls in another's file.
 * One static binary is linked from every .c file of guest/ (scripts/postbuild.mjs);
 * the golden tests link only the parsers (test/unit/guest-golden*.test.ts).
 */
#ifndef SKIFF_INIT_H
#define SKIFF_INIT_H

#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#define IMAGE "/image"
#define TOOLS "/skiff"

/*
 * What the guest takes. The host refuses more before anything is made
 * (guestLimits in src/guest/limits.ts, kept
 * equal to these by the golden tests); the guest refuses more too, and
 * never cuts.
 */
#define MAX_PORTS 16           /* agent ports (agent.ports=) */
#define MAX_NICS 16            /* nic.N= */
#define MAX_MOUNTS 16          /* mount.N= */
#define MAX_REQUEST_ARGS 1023  /* a= records of one request */
#define MAX_REQUEST_ENV 255    /* e= records of one request */
#define MAX_REQUEST_BYTES 65536 /* one request, decoded */
#define MAX_REQUEST_USER 127   /* u=USER[:GROUP] (users.c copies it) */
#define MAX_PIDFILE 64         /* p=NAME under /dev/.skiff-run */
#define MAX_IDENTITY_HEX 32768 /* hex characters of one SKIFF-IDENTITY: 16 KiB of payload */
#define MAX_AGENT_LINE (MAX_IDENTITY_HEX + 64) /* a line on an agent port before SSH; longer ones are dropped whole */
#define NONCE_LEN 24           /* the host's nonce of a HELLO or IDENTITY, lowercase hex */

/* ---- util.c ---- */

/* Set from the config (`debug=1`): every message carries the guest's uptime. */
extern int debug_timing;
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int write_file(const char *path, const char *data, mode_t mode);
char *read_file(const char *path, size_t *len_out);
pid_t fork_unblocked(void);
int run(char *const argv[]);
int wait_for(const char *path, int ms);
void mkdir_p(const char *path, mode_t mode);
void stdio_to_console(void);
long now_ms(void);
int refuse(char *err, size_t errcap, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* ---- config.c: /skiff/config and /skiff/env ---- */

struct nic_config {
  char mac[32], name[16], addr[64];
};
struct mount_config {
  char fs[16], source[64], mode[4];
  char *line;         /* the config's value, to free */
  const char *target; /* the rest of the line */
};
enum restart { RESTART_NO, RESTART_ON_FAILURE, RESTART_ALWAYS };

extern char *config_text;
char *config_value(const char *text, const char *key);
char *config_get(const char *key);
int config_debug(void);
int config_agent_ports(char *err, size_t errcap);
int parse_nics(const char *text, struct nic_config nics[MAX_NICS], char *err, size_t errcap);
int config_nics(struct nic_config nics[MAX_NICS], char *err, size_t errcap);
int config_mounts(struct mount_config mounts[MAX_MOUNTS], char *err, size_t errcap);
char *resolv_conf(const char *dns);
int config_main(char **exec, enum restart *restart);
char **env_entries(char *text, size_t len);

/* ---- request.c: what the host asks skiff-shell (or init, for the main command) to run ---- */

struct request {
  const char *user, *cwd, *pidfile;
  char *env[MAX_REQUEST_ENV + 1]; /* NULL-terminated */
  int nenv;
  char *argv[MAX_REQUEST_ARGS + 1];
  int argc;
};

/* What skiff-shell was called with: `-c COMMAND` (an encoded request, sftp-server, a command line) or nothing (a login). */
struct shell_call {
  const char *command;
  int sftp;
  struct request req;
};

/* Each returns 0, or -1 with the reason in `err` when the request is refused. */
int parse_request(char *data, size_t len, struct request *req, char *err, size_t errcap);
int decode_request(const char *command, struct request *req, char *err, size_t errcap);
int read_shell_call(int argc, char **argv, struct shell_call *call, char *err, size_t errcap);

/*
 * ---- frames.c: skiff's own protocol on an agent port (native.c serves it) ----
 * Keep equal to src/guest/native/frames.ts (test/unit/native-frames.test.ts checks).
 */
#include <stdint.h>
#define NATIVE_VERSION 2 /* 2: STAT, GET, PUT */
#define MAX_FRAME 65536 /* payload bytes of one frame */
#define WINDOW 262144   /* bytes either side may send before the other grants more */

enum {
  /* host to guest */
  F_EXEC = 0x01,
  F_STDIN = 0x02,
  F_STDIN_EOF = 0x03,
  F_SIGNAL = 0x04,
  F_RESIZE = 0x05,
  F_CREDIT = 0x06,
  F_PING = 0x07,
  F_STAT = 0x08, /* u8 flags (1: do not follow a final symlink), the path */
  F_GET = 0x09,  /* the path: its bytes come as STDOUT, then EXIT */
  F_PUT = 0x0a,  /* u32 mode, the path: STDIN becomes its bytes, then EXIT */
  /* guest to host */
  F_HELLO = 0x80,
  F_STARTED = 0x81,
  F_STDOUT = 0x82,
  F_STDERR = 0x83,
  F_EXIT = 0x84,
  F_ERROR = 0x85,
  F_STDIN_CREDIT = 0x86,
  F_PONG = 0x87,
  F_STAT_REPLY = 0x88, /* u32 errno; when 0: u32 mode, uid, gid, u64 size, s64 mtime, u32 nlink */
};

/* files.c: paths in the image's root for STAT, GET and PUT */
int open_in_image(const char *path, int flags, mode_t mode);
size_t stat_reply(unsigned char out[36], const char *path, int nofollow);

struct frame_reader {
  unsigned char head[5];
  size_t have;            /* bytes of head and payload read */
  uint32_t len;
  unsigned char *payload; /* MAX_FRAME bytes */
};

struct exec_call {
  struct request req; /* strings point into data */
  char data[MAX_FRAME + 1];
  int tty;
  char term[128];
  unsigned short rows, cols;
};

uint32_t be32(const unsigned char *p);
void put32(unsigned char *p, uint32_t v);
int frame_feed(struct frame_reader *r, const unsigned char *data, size_t n, size_t *used);
int parse_exec(const unsigned char *payload, size_t len, struct exec_call *call, char *err, size_t errcap);

/* ---- netlink.c: the guest's network changes over rtnetlink (0, or -1 with the reason in err) ---- */

int nl_set_mac(const char *dev, const char *mac, char *err, size_t errcap);
int nl_link_up(const char *dev, char *err, size_t errcap);
int nl_rename(const char *dev, const char *name, char *err, size_t errcap);
int nl_readdress(const char *dev, const char *cidr, char *err, size_t errcap);
int nl_default_route(const char *gw, char *err, size_t errcap);

/* ---- users.c: the image's /etc/passwd and /etc/group ---- */

void set_groups(const char *user, gid_t primary);
int resolve_user(const char *spec, uid_t *uid, gid_t *gid, char *home, size_t hcap, char *shell, size_t scap,
                 char *name, size_t ncap);

/* ---- identity.c: lines on an agent port, and a new identity from the host (a VM restored from a snapshot) ---- */

/* One line at a time off a port, growing as needed up to MAX_AGENT_LINE. */
struct line_reader {
  char *buf;
  size_t len, cap;
  int dropping; /* in a line too long to keep, or holding a NUL: dropped up to its newline */
};
int line_feed(struct line_reader *r, char c);
void line_reset(struct line_reader *r);
void line_free(struct line_reader *r);

struct identity {
  char *text; /* the decoded payload; `hosts` points into it */
  long long time_ms;
  unsigned char seed[64];
  char hostname[65];
  struct nic_config nics[MAX_NICS];
  int nnics;
  char gateway[16]; /* dotted IPv4, "" when none */
  const char *hosts;
  int warm; /* warm=1: run a command once after applying (relay.c: warm_commands) */
};
int identity_nonce(const char *line, char nonce[NONCE_LEN + 1]);
int identity_decode(const char *line, struct identity *id, char *err, size_t errcap);
void identity_answer(char *out, size_t cap, const char *nonce, const char *err);
void identity_free(struct identity *id);
int identity_apply(const struct identity *id, char *err, size_t errcap); /* identity-apply.c */

/* ---- greeting.c: the HELLO copies at the start of a session, and a new host among them ---- */

enum { PREAMBLE_MORE, PREAMBLE_END, PREAMBLE_NEW_HOST };
struct preamble {
  char answered[96]; /* the nonce the session's READY carried */
  char held[128];    /* the line so far; at PREAMBLE_END its first `len` bytes are the session's */
  size_t len;
  int overlong;
  char fresh[96]; /* PREAMBLE_NEW_HOST: the new host's nonce */
};
void preamble_start(struct preamble *p, const char *answered);
int preamble_feed(struct preamble *p, const unsigned char *buf, size_t n, size_t *used);

/* ---- network.c: what boot and a new identity both set ---- */

int set_hostname(const char *hostname);
int set_hosts(const char *hosts);

/* ---- roles ---- */

int shell_main(int argc, char **argv);                            /* agent.c */
int exec_in_image(struct request *req, const char *command, int sftp); /* agent.c */
int kill_main(int argc, char **argv);                             /* helpers.c */
int detach_main(int argc, char **argv);                           /* helpers.c */
int relay_main(const char *dev);                                  /* relay.c */
int native_session(int port, struct preamble *pre);               /* native.c: 1 when a new host said HELLO */
int init_main(void);                                              /* init.c */

/* ---- PID 1's parts ---- */

void power_off(void); /* init.c */
void mount_image_view(void);                                  /* mounts.c */
int wait_for_disk(const char *serial, char *out, size_t cap, int ms);
void mount_volumes(void);
void unmount_volumes(void);
void configure_names(void);                                   /* network.c */
void configure_network(void);
int agent_port_count(void);                                   /* ports.c */
void find_agent_ports(void);
void spawn_relays(int from);
void relay_ended(pid_t pid);
char **start_scripts(const char *dir, int *count);            /* start-scripts.c */
void start_services(void);                                    /* supervise.c */
int service_exited(pid_t pid, int status);
long restart_due_services(void);

#endif
