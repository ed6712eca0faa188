/*
 * The guest's config: key=value lines the host writes into /skiff/config
 * (src/guest/initramfs.ts, renderGuestConfig), read once by init.
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
