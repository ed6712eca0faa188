/**
 * A VM's TAPs on bridge networks. QEMU creates each TAP itself
 * (`-netdev tap,ifname=…,script=…,downscript=no`), runs `script` with the
 * TAP's name as $1, and the kernel removes the TAP when QEMU exits, so
 * there is nothing to clean up after a VM.
 */
import { SkiffError } from "../errors.js";
import { validateIfName } from "./ifnames.js";

/** Linux interface names are at most 15 bytes: "sk" + the 12-hex VM id + the attachment index in base 36. */
export function tapName(vmId: string, index: number): string {
  if (!/^[0-9a-f]{1,12}$/.test(vmId) || !Number.isInteger(index) || index < 0 || index >= 36) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `no TAP name for VM id ${JSON.stringify(vmId)} and NIC index ${index}`, {
      details: { vmId, index },
    });
  }
  return `sk${vmId}${index.toString(36)}`;
}

function shellQuote(text: string): string {
  return `'${text.replaceAll("'", `'\\''`)}'`;
}

/**
 * The /bin/sh script QEMU runs for each of a VM's TAPs: it puts the TAP on
 * its bridge and brings it up. An unknown TAP exits non-zero, and so does a
 * failing `ip`, so QEMU refuses to start rather than run a VM with a NIC
 * that leads nowhere.
 */
export function tapUpScript(entries: readonly { tap: string; bridge: string }[]): string {
  const cases = entries.map(({ tap, bridge }) => {
    validateIfName(tap, "tap");
    validateIfName(bridge, "bridge");
    return `  ${shellQuote(tap)}) bridge=${shellQuote(bridge)} ;;`;
  });
  return [
    "#!/bin/sh",
    "# Written by skiff: QEMU runs this with a TAP's name as $1.",
    "set -eu",
    "PATH=/usr/sbin:/usr/bin:/sbin:/bin:${PATH:-}",
    'case "${1:-}" in',
    ...cases,
    '  *) echo "skiff: no bridge for TAP ${1:-(none)}" >&2; exit 1 ;;',
    "esac",
    'ip link set dev "$1" master "$bridge"',
    'ip link set dev "$1" up',
    "",
  ].join("\n");
}
