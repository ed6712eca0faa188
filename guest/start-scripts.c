/*
 * The start scripts of a start.d directory, as the host's layer builds name
 * them (src/layer/build.ts, startScriptPath: `NN-<layer>`): every regular,
 * executable, not hidden file, in name order. Apart from supervise.c so the
 * golden tests can run it on the host.
 */
#include "skiff-init.h"

#include <dirent.h>

/* scandir's filter takes no context: the directory being scanned. */
static const char *scanning;

static int is_start_script(const struct dirent *e) {
  if (e->d_name[0] == '.') return 0;
  char *path;
  struct stat st;
  if (asprintf(&path, "%s/%s", scanning, e->d_name) < 0) return 0;
  int yes = lstat(path, &st) == 0 && S_ISREG(st.st_mode) && (st.st_mode & 0111);
  free(path);
  return yes;
}

/* The scripts' names, in order (`*count` of them, 0 without the directory); each name and the list are the caller's to free. */
char **start_scripts(const char *dir, int *count) {
  struct dirent **list = NULL;
  scanning = dir;
  int n = scandir(dir, &list, is_start_script, alphasort);
  if (n < 0) n = 0;
  char **names = calloc(n + 1, sizeof *names);
  for (int i = 0; i < n; i++) {
    if (names) names[i] = strdup(list[i]->d_name);
    free(list[i]);
  }
  free(list);
  *count = names ? n : 0;
  return names;
}
