/**
 * The configuration of skiff's own guest kernel (`skiff kernel build`): Linux
 * `allnoconfig` plus the options below, everything built in (no modules, so
 * the initramfs carries none and skiff-init loads none). What a skiff guest
 * on `-M microvm` needs and nothing else: the fewer options, the shorter the
 * build on a small host and the smaller the kernel in a 64 MiB VM.
 *
 * The fragment is fed to Kconfig as KCONFIG_ALLCONFIG, which forces these
 * values while the rest stay "no"; an option whose dependencies the source
 * does not meet would silently stay off, so the build checks every one of
 * them in the resulting .config (missingOptions) and fails naming it.
 */

/** Each group says why a skiff guest needs it. */
const groups: { why: string; options: string[] }[] = [
  { why: "a 64-bit SMP guest", options: ["64BIT", "SMP", "NR_CPUS=64"] },
  {
    why: "fewer timer interrupts: an idle guest costs host CPU under TCG for each one",
    options: ["NO_HZ_IDLE", "HIGH_RES_TIMERS", "HZ_100", "PREEMPT_VOLUNTARY"],
  },
  {
    why: "what images' programs expect of Linux (glibc, systemd-less daemons, package managers)",
    options: [
      "MULTIUSER", "SYSVIPC", "POSIX_MQUEUE", "FHANDLE", "PRINTK", "BUG", "FUTEX", "EPOLL", "SIGNALFD", "TIMERFD",
      "EVENTFD", "SHMEM", "AIO", "IO_URING", "ADVISE_SYSCALLS", "MEMBARRIER", "FILE_LOCKING", "BINFMT_ELF", "BINFMT_SCRIPT",
    ],
  },
  { why: "skiff's initramfs (uncompressed; gzip for a user's own)", options: ["BLK_DEV_INITRD", "RD_GZIP"] },
  {
    why: "sandboxes inside the guest (namespaces, cgroups, seccomp), as the Debian kernel allows",
    options: ["NAMESPACES", "UTS_NS", "IPC_NS", "PID_NS", "NET_NS", "USER_NS", "CGROUPS", "MEMCG", "CGROUP_PIDS", "CGROUP_SCHED", "SECCOMP", "SECCOMP_FILTER"],
  },
  { why: "QEMU's PVH entry (skiff boots an uncompressed vmlinux) and KVM's paravirtual clock", options: ["HYPERVISOR_GUEST", "PARAVIRT", "KVM_GUEST", "PVH"] },
  {
    why: "microvm: devices described by ACPI (which on x86 will not load its tables without PCI: ACPICA's PCI config handler), the power button skiff's stop presses, the ISA serial console, the RTC",
    options: ["PCI", "ACPI", "ACPI_BUTTON", "INPUT", "INPUT_EVDEV", "TTY", "UNIX98_PTYS", "SERIAL_8250", "SERIAL_8250_CONSOLE", "RTC_CLASS", "RTC_DRV_CMOS"],
  },
  {
    why: "virtio-mmio devices: root disk and volumes, NICs, the agent ports, entropy, balloon (free page reporting), vmgenid",
    options: [
      "VIRTIO_MENU", "VIRTIO", "VIRTIO_MMIO", "VIRTIO_MMIO_CMDLINE_DEVICES", "VIRTIO_BALLOON", "BLOCK", "BLK_DEV", "VIRTIO_BLK",
      "NETDEVICES", "NET_CORE", "VIRTIO_NET", "VIRTIO_CONSOLE", "HW_RANDOM", "HW_RANDOM_VIRTIO", "VIRT_DRIVERS", "VMGENID",
    ],
  },
  {
    why: "file systems: ext4 root and volumes, 9p bind mounts, tmpfs, overlay and FUSE for what runs inside",
    options: [
      "EXT4_FS", "EXT4_FS_POSIX_ACL", "PROC_FS", "SYSFS", "TMPFS", "TMPFS_POSIX_ACL", "TMPFS_XATTR", "DEVTMPFS", "OVERLAY_FS", "FUSE_FS",
      "NETWORK_FILESYSTEMS", "NET_9P", "NET_9P_VIRTIO", "9P_FS", "9P_FS_POSIX_ACL",
    ],
  },
  { why: "networking, and veth/bridge/tun for containers in the guest", options: ["NET", "INET", "IPV6", "UNIX", "PACKET", "VETH", "TUN", "BRIDGE"] },
  {
    why: "packet filtering and NAT for a router VM: nft, iptables-nft (xt targets through nft_compat) and legacy iptables, as src/kernel/modules.ts loads for the Debian kernel",
    options: [
      "NETFILTER", "NETFILTER_ADVANCED", "NF_CONNTRACK", "NF_NAT", "NF_TABLES", "NF_TABLES_INET", "NF_TABLES_IPV4", "NF_TABLES_IPV6",
      "NFT_CT", "NFT_NAT", "NFT_MASQ", "NFT_REDIR", "NFT_REJECT", "NFT_COMPAT", "NFT_FIB_INET", "NFT_FIB_IPV4", "NFT_FIB_IPV6",
      "NETFILTER_XTABLES", "NETFILTER_XT_NAT", "NETFILTER_XT_TARGET_MASQUERADE", "NETFILTER_XT_TARGET_REDIRECT",
      "NETFILTER_XT_MATCH_ADDRTYPE", "NETFILTER_XT_MATCH_CONNTRACK", "NETFILTER_XT_MATCH_STATE",
      "IP_NF_IPTABLES", "IP_NF_FILTER", "IP_NF_NAT", "IP_NF_TARGET_REJECT", "IP_NF_TARGET_MASQUERADE",
    ],
  },
];

/** `CONFIG_NAME=value` lines (value y unless the option says otherwise). */
export function configFragment(): string {
  const lines = [`CONFIG_LOCALVERSION="-skiff"`, `CONFIG_DEFAULT_HOSTNAME="skiff"`];
  for (const g of groups) {
    lines.push(`# ${g.why}`);
    for (const o of g.options) lines.push(o.includes("=") ? `CONFIG_${o}` : `CONFIG_${o}=y`);
  }
  return lines.join("\n") + "\n";
}

/** The fragment's options that the resulting .config does not have as asked (a dependency the source lacks). */
export function missingOptions(dotConfig: string, fragment: string = configFragment()): string[] {
  const have = new Set(dotConfig.split("\n").map((l) => l.trim()));
  return fragment
    .split("\n")
    .filter((l) => l.startsWith("CONFIG_"))
    .filter((l) => !have.has(l))
    .map((l) => l.slice("CONFIG_".length, l.indexOf("=")));
}
