/*
 * skiff-init: PID 1 of every skiff guest, and the small helpers around the
 * SSH agent. One static binary, several roles chosen by argv[0]:
 *
 *   init          PID 1 (init.c): load modules, mount the image's root disk
 *                 at /image (mounts.c), configure the guest (network.c),
 *                 keep one relay per agent port alive (ports.c), supervise
 *                 start.d scripts and the main command (supervise.c), reap
 *                 zombies, power off on request.
 *   skiff-relay   one per virtio-serial port (relay.c): handshake with the
 *                 host, then relay bytes between the port and `dropbear -i`
 *                 over a socketpair (dropbear -i insists on a socket for stdin).
 *   skiff-shell   root's login shell in the agent world (agent.c): every SSH
 *                 command arrives here and is run chrooted into the image, as
 *                 the requested user, with the requested env and working dir.
 *   skiff-kill    signal a command by its pidfile (helpers.c).
 *   skiff-detach  start the main command of `run -d` in the background (helpers.c).
 *
 * Why the agent lives outside the image: the image is never modified, any
 * image (glibc, musl, no /etc/passwd, no shell) works, and dropbear always
 * sees skiff's own /etc/passwd and authorized_keys.
 */
#include "skiff-init.h"

int main(int argc, char **argv) {
  const char *role = strrchr(argv[0], '/');
  role = role ? role + 1 : argv[0];
  if (*role == '-') role++;
  if (strcmp(role, "skiff-relay") == 0 && argc >= 2) return relay_main(argv[1]);
  if (strcmp(role, "skiff-shell") == 0) return shell_main(argc, argv);
  if (strcmp(role, "skiff-kill") == 0) return kill_main(argc, argv);
  if (strcmp(role, "skiff-detach") == 0) return detach_main(argc, argv);
  if (getpid() == 1) return init_main();
  fprintf(stderr, "usage: skiff-init is PID 1 of a skiff guest (roles: skiff-relay, skiff-shell, skiff-kill)\n");
  return 2;
}
