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

static int group_lookup(const char *name, gid_t *gid) {
  FILE *f = fopen("/etc/group", "re");
  char line[4096];
  int found = 0;
  while (f && !found && fgets(line, sizeof line, f)) {
    char *fields[3];
    if (colon_fields(line, fields, 3) && strcmp(fields[0], name) == 0) {
      *gid = (gid_t)atol(fields[2]);
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
    for (char *save = NULL, *m = strtok_r(fields[3], ",", &save); m; m = strtok_r(NULL, ",", &save))
      if (strcmp(m, user) == 0) groups[n++] = (gid_t)atol(fields[2]);
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
  char *end;
  long numeric = strtol(user, &end, 10);
  int is_num = *user && *end == 0;
  while (f && fgets(line, sizeof line, f)) {
    char *fields[7];
    if (!colon_fields(line, fields, 7)) continue;
    if ((is_num && atol(fields[2]) == numeric) || (!is_num && strcmp(fields[0], user) == 0)) {
      *uid = (uid_t)atol(fields[2]);
      *gid = (gid_t)atol(fields[3]);
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
    long g = strtol(group, &end, 10);
    if (*end == 0) {
      *gid = (gid_t)g;
    } else {
      if (group_lookup(group, gid) != 0) return -2;
    }
  }
  return 0;
}
