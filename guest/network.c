/*
 * The guest's names and network, as /skiff/config and /skiff/hosts tell
 * them: hostname, /etc/hosts, resolv.conf, and each NIC found by its MAC,
 * renamed and given its static address.
 */
#include "skiff-init.h"

#include <dirent.h>
#include <strings.h> /* strncasecmp */

static int image_has_etc(void) {
  struct stat st;
  return stat(IMAGE "/etc", &st) == 0;
}

/* The kernel's hostname, and the image's /etc/hostname: at boot (`hostname=`) and for a new identity (identity-apply.c). */
int set_hostname(const char *hostname) {
  int r = sethostname(hostname, strlen(hostname));
  if (image_has_etc()) {
    char buf[512];
    snprintf(buf, sizeof buf, "%s\n", hostname);
    if (write_file(IMAGE "/etc/hostname", buf, 0644) != 0) r = -1;
  }
  return r;
}

/* The image's /etc/hosts, whole: the host renders it (this VM's names and every VM it shares a network with). */
int set_hosts(const char *hosts) { return image_has_etc() ? write_file(IMAGE "/etc/hosts", hosts, 0644) : 0; }

/* hostname, /etc/hosts and resolv.conf live on the VM's overlay, like cloud-init writes them. */
void configure_names(void) {
  int have_etc = image_has_etc();
  char *hostname = config_get("hostname");
  if (hostname) set_hostname(hostname);
  free(hostname);
  char *hosts = read_file("/skiff/hosts", NULL);
  if (hosts) set_hosts(hosts);
  free(hosts);
  char *dns = config_get("dns"); /* space-separated nameservers */
  if (dns && have_etc) {
    char *text = resolv_conf(dns);
    unlink(IMAGE "/etc/resolv.conf"); /* may be a dangling symlink to systemd-resolved */
    write_file(IMAGE "/etc/resolv.conf", text, 0644);
    free(text);
  }
  free(dns);
}

/* The kernel's name for the interface with this MAC, or "" when it has not appeared (yet). */
static void iface_by_mac(const char *mac, char *out, size_t cap) {
  out[0] = 0;
  DIR *d = opendir("/sys/class/net");
  if (!d) return;
  struct dirent *e;
  while ((e = readdir(d))) {
    if (e->d_name[0] == '.') continue;
    char path[300];
    snprintf(path, sizeof path, "/sys/class/net/%s/address", e->d_name);
    char *addr = read_file(path, NULL);
    if (addr && strncasecmp(addr, mac, 17) == 0) snprintf(out, cap, "%s", e->d_name);
    free(addr);
    if (out[0]) break;
  }
  closedir(d);
}

/*
 * Each NIC is `nic.N=MAC NAME ADDRESS/PREFIX` in the config. NICs are found
 * by MAC and renamed (through a temporary name, so eth1 and eth2 can swap)
 * to the names the host chose: user networking eth0, then the named
 * networks in order. Addresses are static: skiff handed them out.
 */
void configure_network(void) {
  char err[256];
  if (nl_link_up("lo", err, sizeof err) != 0) logmsg("%s", err);
  struct nic_config nics[MAX_NICS];
  char cur[MAX_NICS][64]; /* the kernel's name for each, as it is renamed */
  int n = config_nics(nics, err, sizeof err);
  if (n < 0) {
    /* A NIC left out would be a network the workload silently lacks: refuse the boot, saying why. */
    logmsg("%s", err);
    power_off();
  }
  int found = 0;
  for (int waited = 0; waited < 3000 && found < n; waited += 5) {
    found = 0;
    for (int i = 0; i < n; i++) {
      iface_by_mac(nics[i].mac, cur[i], sizeof cur[i]);
      if (cur[i][0]) found++;
    }
    if (found < n) usleep(5000);
  }
  for (int i = 0; i < n; i++) {
    if (!cur[i][0]) {
      logmsg("no interface with MAC %s (%s)", nics[i].mac, nics[i].name);
      continue;
    }
    char tmp[16];
    snprintf(tmp, sizeof tmp, "sktmp%d", i);
    if (strcmp(cur[i], nics[i].name) != 0) {
      if (nl_rename(cur[i], tmp, err, sizeof err) != 0) logmsg("%s", err);
    } else {
      snprintf(tmp, sizeof tmp, "%s", nics[i].name);
    }
    snprintf(cur[i], sizeof cur[i], "%s", tmp);
  }
  for (int i = 0; i < n; i++) {
    if (!cur[i][0]) continue;
    if (strcmp(cur[i], nics[i].name) != 0 && nl_rename(cur[i], nics[i].name, err, sizeof err) != 0) logmsg("%s", err);
    if (nl_readdress(nics[i].name, nics[i].addr, err, sizeof err) != 0) logmsg("%s", err);
    if (nl_link_up(nics[i].name, err, sizeof err) != 0) logmsg("%s", err);
  }
  char *gw = config_get("gateway");
  if (gw && nl_default_route(gw, err, sizeof err) != 0) logmsg("%s", err);
  free(gw);
}
