/*
 * The guest's network changes over rtnetlink, in skiff-init itself: what
 * boot and a new identity did with busybox `ip`, a process each, which
 * under TCG cost ~16 ms apiece and far more in a just-resumed guest (every
 * instruction of a new process translated again). Each call returns 0, or
 * -1 with the step and the kernel's reason in `err`.
 */
#include "skiff-init.h"

#include <arpa/inet.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <net/if.h>
#include <sys/socket.h>

struct nl_req {
  struct nlmsghdr h;
  union {
    struct ifinfomsg link;
    struct ifaddrmsg addr;
    struct rtmsg route;
  } body;
  char attrs[256];
};

static void add_attr(struct nl_req *r, unsigned short type, const void *data, size_t len) {
  struct rtattr *a = (struct rtattr *)((char *)&r->h + NLMSG_ALIGN(r->h.nlmsg_len));
  a->rta_type = type;
  a->rta_len = (unsigned short)RTA_LENGTH(len);
  memcpy(RTA_DATA(a), data, len);
  r->h.nlmsg_len = NLMSG_ALIGN(r->h.nlmsg_len) + RTA_ALIGN(a->rta_len);
}

/* Send one request and read its acknowledgement: 0, or the kernel's errno negated. */
static int nl_talk(struct nl_req *r) {
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return -errno;
  r->h.nlmsg_flags |= NLM_F_REQUEST | NLM_F_ACK;
  r->h.nlmsg_seq = 1;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  int result = -EIO;
  if (sendto(fd, r, r->h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) < 0) {
    result = -errno;
  } else {
    char buf[8192];
    for (int done = 0; !done;) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_ERROR) {
          result = ((struct nlmsgerr *)NLMSG_DATA(h))->error;
          done = 1;
          break;
        }
      }
    }
  }
  close(fd);
  return result;
}

static int failed(int r, char *err, size_t errcap, const char *what, const char *dev) {
  if (r == 0) return 0;
  return refuse(err, errcap, "%s %s: %s", what, dev, strerror(-r));
}

static int index_of(const char *dev, char *err, size_t errcap) {
  unsigned i = if_nametoindex(dev);
  if (i == 0) return refuse(err, errcap, "no network device %s", dev);
  return (int)i;
}

/* `ip link set dev DEV address MAC` */
int nl_set_mac(const char *dev, const char *mac, char *err, size_t errcap) {
  int index = index_of(dev, err, errcap);
  if (index < 0) return -1;
  unsigned char hw[6];
  if (sscanf(mac, "%hhx:%hhx:%hhx:%hhx:%hhx:%hhx", &hw[0], &hw[1], &hw[2], &hw[3], &hw[4], &hw[5]) != 6)
    return refuse(err, errcap, "bad MAC %s", mac);
  struct nl_req r = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)), .nlmsg_type = RTM_NEWLINK}};
  r.body.link.ifi_family = AF_UNSPEC;
  r.body.link.ifi_index = index;
  add_attr(&r, IFLA_ADDRESS, hw, sizeof hw);
  return failed(nl_talk(&r), err, errcap, "set the MAC of", dev);
}

/* `ip link set dev DEV up`, or `name NEW` when `rename` is given. */
static int link_change(const char *dev, const char *rename, char *err, size_t errcap) {
  int index = index_of(dev, err, errcap);
  if (index < 0) return -1;
  struct nl_req r = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifinfomsg)), .nlmsg_type = RTM_NEWLINK}};
  r.body.link.ifi_family = AF_UNSPEC;
  r.body.link.ifi_index = index;
  if (rename) {
    add_attr(&r, IFLA_IFNAME, rename, strlen(rename) + 1);
  } else {
    r.body.link.ifi_flags = IFF_UP;
    r.body.link.ifi_change = IFF_UP;
  }
  return failed(nl_talk(&r), err, errcap, rename ? "rename" : "bring up", dev);
}

int nl_link_up(const char *dev, char *err, size_t errcap) { return link_change(dev, NULL, err, errcap); }
int nl_rename(const char *dev, const char *name, char *err, size_t errcap) { return link_change(dev, name, err, errcap); }

/* "A.B.C.D/N" into an address and a prefix length. */
static int parse_cidr(const char *cidr, struct in_addr *a, unsigned char *prefix) {
  char host[64];
  const char *slash = strchr(cidr, '/');
  size_t len = slash ? (size_t)(slash - cidr) : strlen(cidr);
  if (len >= sizeof host) return -1;
  memcpy(host, cidr, len);
  host[len] = 0;
  char *end;
  long p = slash ? strtol(slash + 1, &end, 10) : 32;
  if ((slash && (*end || end == slash + 1)) || p < 0 || p > 32 || inet_pton(AF_INET, host, a) != 1) return -1;
  *prefix = (unsigned char)p;
  return 0;
}

/*
 * `ip addr flush dev DEV` then `ip addr replace CIDR dev DEV`: every
 * address DEV has (its source's, in a resumed guest; IPv6 too, as flush
 * took them: clones must not share a link-local address) goes, unless it
 * is the new one, which comes or stays.
 */
int nl_readdress(const char *dev, const char *cidr, char *err, size_t errcap) {
  int index = index_of(dev, err, errcap);
  if (index < 0) return -1;
  struct in_addr want;
  unsigned char prefix;
  if (parse_cidr(cidr, &want, &prefix) != 0) return refuse(err, errcap, "bad address %s", cidr);
  /* Dump the addresses and delete DEV's others. */
  int fd = socket(AF_NETLINK, SOCK_RAW | SOCK_CLOEXEC, NETLINK_ROUTE);
  if (fd < 0) return refuse(err, errcap, "netlink: %s", strerror(errno));
  struct nl_req q = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)), .nlmsg_type = RTM_GETADDR, .nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP, .nlmsg_seq = 1}};
  q.body.addr.ifa_family = AF_UNSPEC;
  struct sockaddr_nl kernel = {.nl_family = AF_NETLINK};
  struct {
    unsigned char family, prefix, len, bytes[16];
  } old[32];
  int nold = 0;
  if (sendto(fd, &q, q.h.nlmsg_len, 0, (struct sockaddr *)&kernel, sizeof kernel) >= 0) {
    char buf[16384];
    for (int done = 0; !done;) {
      ssize_t n = recv(fd, buf, sizeof buf, 0);
      if (n < 0 && errno == EINTR) continue;
      if (n <= 0) break;
      for (struct nlmsghdr *h = (struct nlmsghdr *)buf; NLMSG_OK(h, (unsigned)n); h = NLMSG_NEXT(h, n)) {
        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
          done = 1;
          break;
        }
        struct ifaddrmsg *ifa = NLMSG_DATA(h);
        if (h->nlmsg_type != RTM_NEWADDR || (int)ifa->ifa_index != index || nold == 32) continue;
        /* IPv4 names its address IFA_LOCAL, IPv6 IFA_ADDRESS. */
        unsigned short want_type = ifa->ifa_family == AF_INET ? IFA_LOCAL : IFA_ADDRESS;
        size_t want_len = ifa->ifa_family == AF_INET ? 4 : 16;
        int len = (int)IFA_PAYLOAD(h);
        for (struct rtattr *a = IFA_RTA(ifa); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
          if (a->rta_type != want_type || RTA_PAYLOAD(a) != want_len) continue;
          old[nold].family = ifa->ifa_family;
          old[nold].prefix = ifa->ifa_prefixlen;
          old[nold].len = (unsigned char)want_len;
          memcpy(old[nold++].bytes, RTA_DATA(a), want_len);
          break;
        }
      }
    }
  }
  close(fd);
  for (int i = 0; i < nold; i++) {
    if (old[i].family == AF_INET && memcmp(old[i].bytes, &want, 4) == 0 && old[i].prefix == prefix) continue;
    struct nl_req d = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)), .nlmsg_type = RTM_DELADDR}};
    d.body.addr = (struct ifaddrmsg){.ifa_family = old[i].family, .ifa_prefixlen = old[i].prefix, .ifa_index = (unsigned)index};
    add_attr(&d, old[i].family == AF_INET ? IFA_LOCAL : IFA_ADDRESS, old[i].bytes, old[i].len);
    int r = nl_talk(&d);
    /* Gone already (a secondary taken with its primary) is what was wanted. */
    if (r != 0 && r != -EADDRNOTAVAIL) return failed(r, err, errcap, "remove an old address of", dev);
  }
  struct nl_req r = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct ifaddrmsg)), .nlmsg_type = RTM_NEWADDR, .nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE}};
  r.body.addr = (struct ifaddrmsg){.ifa_family = AF_INET, .ifa_prefixlen = prefix, .ifa_index = (unsigned)index};
  add_attr(&r, IFA_LOCAL, &want, 4);
  add_attr(&r, IFA_ADDRESS, &want, 4);
  return failed(nl_talk(&r), err, errcap, "set the address of", dev);
}

/* `ip route replace default via GW` */
int nl_default_route(const char *gw, char *err, size_t errcap) {
  struct in_addr via;
  if (inet_pton(AF_INET, gw, &via) != 1) return refuse(err, errcap, "bad gateway %s", gw);
  struct nl_req r = {.h = {.nlmsg_len = NLMSG_LENGTH(sizeof(struct rtmsg)), .nlmsg_type = RTM_NEWROUTE, .nlmsg_flags = NLM_F_CREATE | NLM_F_REPLACE}};
  r.body.route = (struct rtmsg){.rtm_family = AF_INET, .rtm_table = RT_TABLE_MAIN, .rtm_protocol = RTPROT_BOOT, .rtm_scope = RT_SCOPE_UNIVERSE, .rtm_type = RTN_UNICAST};
  add_attr(&r, RTA_GATEWAY, &via, 4);
  return failed(nl_talk(&r), err, errcap, "set the default route via", gw);
}
