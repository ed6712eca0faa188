/*
 * Init's side of the agent: the virtio-serial ports named skiff.agent.N,
 * found as the driver probes them, and one skiff-relay per port, started
 * again whenever it ends.
 */
#include "skiff-init.h"

#include <dirent.h>

struct port {
  char dev[64];
  pid_t relay;
};
static struct port ports[MAX_PORTS];
static int nports;

static int known_port(const char *dev) {
  for (int i = 0; i < nports; i++)
    if (strcmp(ports[i].dev, dev) == 0) return 1;
  return 0;
}

/* Add ports not seen before. They appear asynchronously: the host announces them after the driver loads. */
static void find_ports(void) {
  DIR *d = opendir("/sys/class/virtio-ports");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d)) && nports < MAX_PORTS) {
    if (e->d_name[0] == '.') continue;
    char dev[64];
    snprintf(dev, sizeof dev, "/dev/%s", e->d_name);
    if (known_port(dev)) continue;
    char path[256];
    snprintf(path, sizeof path, "/sys/class/virtio-ports/%s/name", e->d_name);
    char *name = read_file(path, NULL);
    struct stat st;
    if (name && strncmp(name, "skiff.agent.", 12) == 0 && stat(dev, &st) == 0) {
      snprintf(ports[nports].dev, sizeof ports[nports].dev, "%s", dev);
      ports[nports].relay = 0;
      nports++;
    }
    free(name);
  }
  closedir(d);
}

static pid_t spawn_relay(const char *dev) {
  pid_t pid = fork_unblocked();
  if (pid == 0) {
    execl(TOOLS "/bin/skiff-init", "skiff-relay", dev, (char *)NULL);
    _exit(127);
  }
  return pid;
}

int agent_port_count(void) { return nports; }

/* Add ports not seen before (without starting their relays). */
void find_agent_ports(void) { find_ports(); }

/* Start a relay on every port from index `from` on. */
void spawn_relays(int from) {
  for (int i = from; i < nports; i++) ports[i].relay = spawn_relay(ports[i].dev);
}

/* A reaped child that was a port's relay: the port gets a new one. */
void relay_ended(pid_t pid) {
  for (int i = 0; i < nports; i++)
    if (ports[i].relay == pid) ports[i].relay = spawn_relay(ports[i].dev);
}
