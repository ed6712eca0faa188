/**
 * VM names: Docker-style random `adjective_noun` names for VMs started
 * without `--name`, and the rule every name must follow. Names end up in
 * paths, socket names and hostnames, hence the narrow alphabet.
 */
import { SkiffError } from "../errors.js";

const adjectives = [
  "agile", "amber", "ancient", "bold", "brave", "bright", "calm", "clever",
  "cosmic", "crisp", "curious", "daring", "eager", "fancy", "fierce", "frosty",
  "gentle", "gleaming", "happy", "hidden", "humble", "jolly", "keen", "lively",
  "lucky", "mellow", "misty", "nimble", "noble", "patient", "placid", "quiet",
  "rapid", "serene", "silent", "steady", "swift", "tidy", "vivid", "witty",
] as const;

const nouns = [
  "albatross", "anchor", "barnacle", "beacon", "breeze", "buoy", "canoe", "compass",
  "coral", "cove", "current", "dinghy", "dolphin", "dory", "estuary", "ferry",
  "fjord", "gull", "harbor", "heron", "island", "kayak", "keel", "lagoon",
  "lighthouse", "mariner", "narwhal", "otter", "paddle", "pelican", "puffin", "reef",
  "rudder", "sail", "schooner", "seal", "shoal", "tide", "walrus", "wave",
] as const;

/** `adjective_noun`; `random` is injectable so tests are deterministic. */
export function randomName(random: () => number = Math.random): string {
  const pick = <T>(list: readonly T[]): T => list[Math.floor(random() * list.length) % list.length] as T;
  return `${pick(adjectives)}_${pick(nouns)}`;
}

/**
 * A random name not in use. After a few collisions a digit is appended, as
 * Docker does, so this ends even when most plain names are taken.
 */
export function uniqueRandomName(isTaken: (name: string) => boolean, random: () => number = Math.random): string {
  for (let attempt = 0; ; attempt++) {
    const base = randomName(random);
    const name = attempt < 10 ? base : `${base}${Math.floor(random() * 10) + attempt - 10}`;
    if (!isTaken(name)) return name;
  }
}

/**
 * 128 characters: compose names VMs `<project>-<service>-<n>`, and real
 * projects pass 63 (Sentry's `sentry-self-hosted-snuba-generic-metrics-
 * distributions-consumer-1`). A hostname made from a name is cut to 63.
 */
export const namePattern = /^[a-zA-Z0-9][a-zA-Z0-9_.-]{0,127}$/;

/** Return `name` if it is a valid name for a VM (or, with `what`, a volume…), else throw ERR_SKIFF_BAD_NAME. */
export function validateName(name: string, place = "name", what = "VM"): string {
  if (!namePattern.test(name)) {
    throw new SkiffError("ERR_SKIFF_BAD_NAME", `invalid ${what} name ${JSON.stringify(name)}`, {
      place,
      hint: "use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit",
    });
  }
  return name;
}
