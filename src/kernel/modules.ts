/**
 * The guest's kernel modules: which ones, and in what order. The Debian
 * kernel builds virtio and ext4 as modules, so the boot initramfs carries
 * them and skiff-init loads them (with finit_module) in dependency order.
 */

/**
 * What every skiff guest needs, in two steps: `boot` is what the root disk
 * and the agent need, loaded first; `late` is loaded once the agent is up,
 * while the host's SSH handshake is in flight (module loading is slow
 * under TCG: ~40 ms each). Network drivers only when the VM has a NIC,
 * 9p only when it has bind mounts.
 */
export const guestModules = {
  boot: [
    "crc32c_generic", // ext4 and jbd2 want crc32c; nothing autoloads it without modprobe
    "virtio_mmio",
    "virtio_blk",
    "ext4",
    "virtio_console",
  ],
  late: [
    "virtio-rng", // entropy for the workload (dropbear is fine with the CPU's RDRAND)
    "button", // ACPI power button: QMP system_powerdown reaches skiff-init
    "evdev",
    "virtio_balloon", // free page reporting: memory the guest frees goes back to the host (qemu/args.ts)
  ],
  network: ["virtio_net"],
  /**
   * Packet filtering and NAT, for images that have iptables or nft (a router
   * VM, the `base` layer): the image carries no modules of skiff's kernel, so
   * nothing could load them on demand. Legacy iptables, iptables-nft (which
   * uses xt_* targets through nft_compat) and nft itself.
   */
  netfilter: [
    "nf_tables", "nft_compat", "nft_chain_nat", "nft_nat", "nft_masq", "nft_ct", "nft_reject_inet", "nft_fib_inet",
    "x_tables", "xt_MASQUERADE", "xt_nat", "xt_tcpudp", "xt_conntrack", "xt_state", "xt_addrtype", "xt_REDIRECT",
    "ip_tables", "iptable_filter", "iptable_nat", "ipt_REJECT", "nf_conntrack", "nf_nat",
  ],
  /** Bind mounts (virtio-9p); 9p pulls in netfs and fscache on Debian's 6.1. */
  shares: ["9pnet_virtio", "9p"],
} as const;

/** modules.dep as a map from module name to its own path and its dependencies' paths. */
export interface ModuleIndex {
  byName: Map<string, { path: string; deps: string[] }>;
}

function moduleName(path: string): string {
  const base = path.slice(path.lastIndexOf("/") + 1);
  return base.replace(/\.ko(\.(xz|zst|gz))?$/, "");
}

export function parseModulesDep(text: string): ModuleIndex {
  const byName = new Map<string, { path: string; deps: string[] }>();
  for (const line of text.split("\n")) {
    const colon = line.indexOf(":");
    if (colon <= 0) continue;
    const path = line.slice(0, colon).trim();
    const deps = line
      .slice(colon + 1)
      .trim()
      .split(/\s+/)
      .filter((d) => d !== "");
    byName.set(moduleName(path), { path, deps });
  }
  return { byName };
}

/**
 * Paths (relative to the modules dir) of the wanted modules and everything
 * they depend on, each after its dependencies, each once. Unknown names are
 * returned separately: they are either built in or missing.
 */
export function resolveModules(
  index: ModuleIndex,
  wanted: readonly string[],
  alreadyLoaded: readonly string[] = [],
): { paths: string[]; notFound: string[] } {
  const pathToName = new Map<string, string>();
  for (const [name, m] of index.byName) pathToName.set(m.path, name);
  const ordered: string[] = [];
  const seen = new Set<string>(alreadyLoaded);
  const notFound: string[] = [];
  const visit = (name: string): void => {
    const normal = index.byName.has(name) ? name : name.replace(/-/g, "_");
    const entry = index.byName.get(normal) ?? index.byName.get(name.replace(/_/g, "-"));
    if (entry === undefined) {
      notFound.push(name);
      return;
    }
    if (seen.has(entry.path)) return;
    seen.add(entry.path);
    // modules.dep lists the deepest dependency last; load those first.
    for (const dep of [...entry.deps].reverse()) visit(pathToName.get(dep) ?? moduleName(dep));
    ordered.push(entry.path);
  };
  for (const name of wanted) visit(name);
  return { paths: ordered, notFound };
}

const signatureMarker = Buffer.from("~Module signature appended~\n", "latin1");
/** struct module_signature: algo, hash, id_type, signer_len, key_id_len, 3 bytes of padding, then sig_len (big-endian). */
const signatureInfoLength = 12;

/**
 * A module file without the signature appended to it (the signature, a
 * struct module_signature and `~Module signature appended~\n`), or the same
 * bytes when it has none or its trailer does not add up.
 *
 * Why: Debian's kernel checks each module's signature as it loads it, a
 * SHA-256 of the whole file on the guest's emulated CPU. In a guest,
 * `insmod` of sunrpc.ko (1.5 MB) took 180 ms signed and 140 ms without,
 * four times each; a cold boot loads 3.1 MB of modules. The modules come
 * from the host's own package, and nothing in the guest is trusted either
 * way, so the check guards nothing here. An unsigned module taints the
 * kernel ('E', one notice in dmesg) and is loaded; a kernel that enforces
 * signatures keeps them (`keepModuleSignatures`).
 */
export function withoutSignature(module: Buffer): Buffer {
  const end = module.length - signatureMarker.length;
  const info = end - signatureInfoLength;
  if (info < 0 || !module.subarray(end).equals(signatureMarker)) return module;
  const signed = module.readUInt8(info + 3) + module.readUInt8(info + 4) + module.readUInt32BE(info + 8);
  return signed > info ? module : module.subarray(0, info - signed);
}

/**
 * Whether a kernel's build config forces module signatures
 * (`CONFIG_MODULE_SIG_FORCE=y`); no config found counts as forced, to be safe.
 */
export function configForcesSignatures(kernelConfig: string | undefined): boolean {
  return kernelConfig === undefined || /^CONFIG_MODULE_SIG_FORCE=y$/m.test(kernelConfig);
}

/**
 * Whether a VM's modules must keep their signatures: its kernel forces them
 * (`configForcesSignatures`), or its command line asks for enforcement
 * (`module.sig_enforce`, or `lockdown`, which enforces them too).
 */
export function keepModuleSignatures(args: readonly string[], kernelForces: boolean): boolean {
  return kernelForces || args.some((a) => /^(module\.sig_enforce(=|$)|lockdown=)/.test(a) && !/^module\.sig_enforce=(0|n|N)$/.test(a));
}
