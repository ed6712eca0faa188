/*
 * Users and groups come from the image's own /etc/passwd and /etc/group,
 * parsed here: glibc's NSS cannot be used from a static binary in a foreign
 * root.
 */
#include "skiff-init.h"

#include <grp.h> /* setgroups */

/*
 * A line of /etc/passwd or /etc/group split at its colons, in place, into
 * `n` fields, the newline dropped; 0 when it has fewer fields.
 */
static int colon_fields(char *line, char *fields[], int n) {
  line[strcspn(line, "\n")] = 0;
  char *p = line;
  for (int i = 0; i < n; i++) {
    if (!p) return 0;
    fields[i] = p;
    p = strchr(p, ':');
    if (p) *p++ = 0;
  }
  return 1;
}

/* A user or group id written as a number: digits only, at most 4294967294. uid_t is 32 bits, so a
 * larger number would wrap (4294967296 is root) and -1 (4294967295) means "leave unchanged" to
 * setuid/setgid: both would run the command as root. 1 when `s` is such a number. */
static int parse_id(const char *s, unsigned long *out) {
  if (!*s) return 0;
  unsigned long v = 0;
  for (const char *p = s; *p; p++) {
    if (*p < '0' || *p > '9') return 0;
    v = v * 10 + (unsigned long)(*p - '0');
    if (v > 4294967294UL) return 0;
  }
  *out = v;
  return 1;
}

static int group_lookup(const char *name, gid_t *gid) {
  FILE *f = fopen("/etc/group", "re");
  char line[4096];
  int found = 0;
  while (f && !found && fgets(line, sizeof line, f)) {
    char *fields[3];
    unsigned long id;
    if (colon_fields(line, fields, 3) && strcmp(fields[0], name) == 0 && parse_id(fields[2], &id)) {
      *gid = (gid_t)id;
      found = 1;
    }
  }
  if (f) fclose(f);
  return found ? 0 : -1;
}

/* Supplementary groups: every group of /etc/group listing the user as a member. */
void set_groups(const char *user, gid_t primary) {
  gid_t groups[64];
  int n = 0;
  groups[n++] = primary;
  FILE *f = fopen("/etc/group", "re");
  char line[4096];
  while (f && n < 64 && fgets(line, sizeof line, f)) {
    char *fields[4];
    if (!colon_fields(line, fields, 4)) continue;
    unsigned long id;
    if (!parse_id(fields[2], &id)) continue;
    /* n < 64 inside the loop too: a line may list the user many times. */
    for (char *save = NULL, *m = strtok_r(fields[3], ",", &save); m && n < 64; m = strtok_r(NULL, ",", &save))
      if (strcmp(m, user) == 0) groups[n++] = (gid_t)id;
  }
  if (f) fclose(f);
  setgroups(n, groups);
}

int resolve_user(const char *spec, uid_t *uid, gid_t *gid, char *home, size_t hcap, char *shell, size_t scap,
                        char *name, size_t ncap) {
  *uid = 0;
  *gid = 0;
  snprintf(home, hcap, "/root");
  snprintf(shell, scap, "/bin/sh");
  snprintf(name, ncap, "root");
  if (!spec || !*spec) spec = "root";
  char user[128], group[128] = "";
  snprintf(user, sizeof user, "%s", spec);
  char *colon = strchr(user, ':');
  if (colon) {
    *colon = 0;
    snprintf(group, sizeof group, "%s", colon + 1);
  }
  int found = 0;
  FILE *f = fopen("/etc/passwd", "re");
  char line[1024];
  unsigned long numeric = 0;
  int is_num = parse_id(user, &numeric);
  /* Anything that starts like a number but is not a valid id (-1, 4294967296, 1e3) is refused, not
   * looked up by name: it could only be an attempt to wrap around to root. */
  if (!is_num && ((*user >= '0' && *user <= '9') || *user == '-' || *user == '+')) return -1;
  while (f && fgets(line, sizeof line, f)) {
    char *fields[7];
    unsigned long line_uid, line_gid;
    if (!colon_fields(line, fields, 7)) continue;
    /* The image's passwd is the guest's data: a line whose ids do not parse is skipped. */
    if (!parse_id(fields[2], &line_uid) || !parse_id(fields[3], &line_gid)) continue;
    if ((is_num && line_uid == numeric) || (!is_num && strcmp(fields[0], user) == 0)) {
      *uid = (uid_t)line_uid;
      *gid = (gid_t)line_gid;
      snprintf(name, ncap, "%s", fields[0]);
      snprintf(home, hcap, "%s", fields[5]);
      if (*fields[6]) snprintf(shell, scap, "%s", fields[6]);
      found = 1;
      break;
    }
  }
  if (f) fclose(f);
  if (!found) {
    if (!is_num && strcmp(user, "root") != 0) return -1;
    *uid = (uid_t)(is_num ? numeric : 0);
    *gid = *uid;
    snprintf(name, ncap, "%s", user);
    if (*uid != 0) snprintf(home, hcap, "/");
  }
  if (*group) {
    unsigned long g;
    if (parse_id(group, &g)) {
      *gid = (gid_t)g;
    } else if ((*group >= '0' && *group <= '9') || *group == '-' || *group == '+') {
      return -2;
    } else {
      if (group_lookup(group, gid) != 0) return -2;
    }
  }
  return 0;
}
