/**
 * The three images test/vm/stdlib-layers.test.ts boots, as layer lists on
 * `debian`; scripts/test-std-images.ts, which set-up starts in the
 * background, builds the same ones ahead of that test.
 *
 * The builds run at once, so the longest sets the time. With build VMs on
 * norandmaps (2026-12-04, build logs' seconds) the layers took: postgres
 * 153 s, samba 70, ssh 36, memcached, http-proxy, vsftpd and socks-proxy
 * 5-10 each; prometheus 78, mariadb 96; clients 101, ssh-hardened 39. With
 * samba on srv1 the builds took 301, 188 and 154 s; on srv2 they are about
 * 220, 245 and 140. (Before, mariadb had moved off srv1 for the same
 * reason, and moving postgres to srv2 made that the long pole.)
 */
export const stdlibImages = {
  srv1: ["ssh", "memcached", "postgres", "http-proxy", "vsftpd", "socks-proxy"],
  srv2: ["prometheus", "mariadb", "samba"],
  cli: ["clients", "ssh-hardened"],
} as const;
