/*
 * Acting on a new identity (parsed by identity.c) in a guest restored from
 * a memory snapshot: its clock, its kernel's random pool, its names and its
 * addresses become its own instead of its source's. Applying the same
 * identity twice leaves the guest as applying it once.
 */
#include "skiff-init.h"

#include <linux/random.h>
#include <sys/ioctl.h>
#include <sys/time.h>

/*
 * Two VMs restored from one snapshot start with the same crng state and
 * would produce the same /dev/urandom output. The host's seed is mixed in
 * and credited, then the crng is re-keyed at once (it would otherwise wait
 * for its next scheduled reseed, up to a minute, still serving the
 * source's stream).
 */
static int reseed(const unsigned char *seed, size_t len, char *err, size_t errcap) {
  int fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
  if (fd < 0) return refuse(err, errcap, "/dev/urandom: %s", strerror(errno));
  /* rand_pool_info ends in a flexible array: the seed follows it. */
  union {
    struct rand_pool_info info;
    unsigned char raw[sizeof(struct rand_pool_info) + 64];
  } entropy;
  if (len > 64) len = 64;
  entropy.info.entropy_count = (int)len * 8;
  entropy.info.buf_size = (int)len;
  memcpy(entropy.raw + offsetof(struct rand_pool_info, buf), seed, len);
  const char *step = write(fd, seed, len) != (ssize_t)len      ? "write"
                     : ioctl(fd, RNDADDENTROPY, &entropy.info) != 0 ? "RNDADDENTROPY"
                     : ioctl(fd, RNDRESEEDCRNG) != 0                ? "RNDRESEEDCRNG"
                                                                    : NULL;
  int saved = errno;
  close(fd);
  return step ? refuse(err, errcap, "/dev/urandom %s: %s", step, strerror(saved)) : 0;
}

/*
 * Each NIC by the name boot gave it (its MAC is what changes): the new MAC,
 * its old addresses gone and the new one in place, the link up. Then the
 * default route, which went with the old address. Over rtnetlink in this
 * process (netlink.c): a resumed guest runs every new process's code
 * through a cold translation cache, and five `ip` processes were most of
 * the time a restore waited for its identity.
 */
static int renumber(const struct identity *id, char *err, size_t errcap) {
  for (int i = 0; i < id->nnics; i++) {
    const struct nic_config *nic = &id->nics[i];
    if (nl_set_mac(nic->name, nic->mac, err, errcap) != 0 || nl_readdress(nic->name, nic->addr, err, errcap) != 0 ||
        nl_link_up(nic->name, err, errcap) != 0)
      return -1;
  }
  if (id->gateway[0]) return nl_default_route(id->gateway, err, errcap);
  return 0;
}

/* 0, or -1 with the step that failed in `err` (the steps before it stay done: each is safe to do again). */
int identity_apply(const struct identity *id, char *err, size_t errcap) {
  struct timeval tv = {.tv_sec = (time_t)(id->time_ms / 1000), .tv_usec = (suseconds_t)(id->time_ms % 1000) * 1000};
  if (settimeofday(&tv, NULL) != 0) return refuse(err, errcap, "settimeofday: %s", strerror(errno));
  if (reseed(id->seed, sizeof id->seed, err, errcap) != 0) return -1;
  if (set_hostname(id->hostname) != 0) return refuse(err, errcap, "hostname %s: %s", id->hostname, strerror(errno));
  if (set_hosts(id->hosts) != 0) return refuse(err, errcap, "/etc/hosts: %s", strerror(errno));
  return renumber(id, err, errcap);
}
