/**
 * A VM's TAPs on bridge networks. The jailer (src/jail/skiff-jail.c) opens
 * each TAP, puts it on its bridge and brings it up while it still has root,
 * then hands the open descriptor to QEMU (`-netdev tap,fd=N`). The TAP lives
 * as long as a descriptor of it is open, so the kernel removes it when QEMU
 * exits however it ends: there is nothing to clean up after a VM.
 */
import { SkiffError } from "../errors.js";

/** Linux interface names are at most 15 bytes: "sk" + the 12-hex VM id + the attachment index in base 36. */
export function tapName(vmId: string, index: number): string {
  if (!/^[0-9a-f]{1,12}$/.test(vmId) || !Number.isInteger(index) || index < 0 || index >= 36) {
    throw new SkiffError("ERR_SKIFF_INTERNAL", `no TAP name for VM id ${JSON.stringify(vmId)} and NIC index ${index}`, {
      details: { vmId, index },
    });
  }
  return `sk${vmId}${index.toString(36)}`;
}
