/**
 * A network's name: what it may be, checked wherever one is given (flags,
 * project files, the API), without loading the network store.
 */
import { SkiffError } from "../errors.js";
import { namePattern } from "../util/names.js";

/** Names with a meaning of their own on `--network`. */
export const reservedNetworkNames = new Set(["user", "none", "host", "default"]);

export function validateNetworkName(name: string, place = "name"): string {
  // A network's name becomes part of file names (its record, its run directory of link sockets, whose
  // paths must stay under 108 bytes): the VM-name alphabet, at most 63. Compose names networks
  // `<project>_<network>`, often past 32 characters.
  if (!namePattern.test(name) || name.length > 63) {
    throw new SkiffError("ERR_SKIFF_BAD_NAME", `invalid network name ${JSON.stringify(name)}`, {
      place,
      hint: "use 1 to 63 letters, digits, '_', '.' or '-', starting with a letter or digit",
    });
  }
  if (reservedNetworkNames.has(name)) {
    throw new SkiffError("ERR_SKIFF_BAD_NAME", `"${name}" is a network mode, not a name for a network`, {
      place,
      hint: "choose another name",
    });
  }
  return name;
}
