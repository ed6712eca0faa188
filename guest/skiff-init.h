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
#define MAX_PORTS 16
#define CONFIG_MAX 65536

/* ---- util.c ---- */

/* Set from the config (`debug=1`): every message carries the guest's uptime. */
extern int debug_timing;
void logmsg(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
int write_file(const char *path, const char *data, mode_t mode);
char *read_file(const char *path, size_t *len_out);
int run(char *const argv[]);
int wait_for(const char *path, int ms);
void mkdir_p(const char *path, mode_t mode);
void stdio_to_console(void);
long now_ms(void);

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
char *config_get(const char *key);
int config_debug(void);
int config_agent_ports(void);
int config_nics(struct nic_config *nics, int cap, char *err, size_t errcap);
int config_mounts(struct mount_config *mounts, int cap, char *err, size_t errcap);
char *resolv_conf(const char *dns);
int config_main(char **exec, enum restart *restart);
char **env_entries(char *text);

/* ---- request.c: what the host asks skiff-shell (or init, for the main command) to run ---- */

struct request {
  const char *user, *cwd, *pidfile;
  char *env[256];
  int nenv;
  char *argv[1024];
  int argc;
};

/* What skiff-shell was called with: `-c COMMAND` (an encoded request, sftp-server, a command line) or nothing (a login). */
struct shell_call {
  const char *command;
  int sftp;
  struct request req;
};

size_t b64decode(const char *in, char *out);
void parse_request(char *data, size_t len, struct request *req);
void decode_request(const char *command, struct request *req);
void read_shell_call(int argc, char **argv, struct shell_call *call);

/* ---- users.c: the image's /etc/passwd and /etc/group ---- */

void set_groups(const char *user, gid_t primary);
int resolve_user(const char *spec, uid_t *uid, gid_t *gid, char *home, size_t hcap, char *shell, size_t scap,
                 char *name, size_t ncap);

/* ---- roles ---- */

int shell_main(int argc, char **argv);                            /* agent.c */
int exec_in_image(struct request *req, const char *command, int sftp); /* agent.c */
int kill_main(int argc, char **argv);                             /* helpers.c */
int detach_main(int argc, char **argv);                           /* helpers.c */
int relay_main(const char *dev);                                  /* relay.c */
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
void start_services(void);                                    /* supervise.c */
int service_exited(pid_t pid, int status);
long restart_due_services(void);

#endif
