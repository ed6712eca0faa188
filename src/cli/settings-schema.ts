/**
 * The settings file's schema and its parser (settings.ts reads the file):
 * apart, so that a command run without a settings file loads neither zod
 * nor yaml for it.
 */
import { z } from "zod/v4";
import { parseCpus, parseMemory } from "../pure.js";
import { configError } from "../config/zod-error.js";
import { parseYaml } from "../config/yaml-doc.js";

const words = z.union([z.string().min(1), z.array(z.string().min(1))]).transform((v) => (Array.isArray(v) ? v : [v]));

const settingsSchema = z.strictObject({
  /** `--memory` when none is given: MiB as a number, or "512m", "1g". */
  memory: z.union([z.number().positive(), z.string().min(1)]).optional(),
  cpus: z.number().int().positive().optional(),
  /** `--network` when none is given: user, none, or named networks. */
  network: words.optional(),
  /** Docker's registry-mirrors: Docker Hub pulls try them in order first (as SKIFF_REGISTRY_MIRRORS). */
  "registry-mirrors": z.array(z.string().min(1)).optional(),
  /** Registries spoken to over plain HTTP (as SKIFF_INSECURE_REGISTRIES). */
  "insecure-registries": z.array(z.string().min(1)).optional(),
});

export type UserSettings = z.output<typeof settingsSchema>;

/** The settings in `text` (from `file`), checked: a wrong key or value is ERR_SKIFF_CONFIG at its line:column. */
export function parseSettings(text: string, file: string): UserSettings {
  const doc = parseYaml(text, file);
  // An empty file (or one of comments only, as `settings init` writes) sets nothing.
  const parsed = settingsSchema.safeParse(doc.value ?? {});
  if (!parsed.success) throw configError(parsed.error, doc.placeOf, doc.keyPlaceOf, file, `see \`skiff settings init\` for every setting`);
  const s = parsed.data;
  // The same checks the flags get, so a bad size fails here with the file's place.
  if (s.memory !== undefined) parseMemory(String(s.memory), doc.placeOf(["memory"]));
  if (s.cpus !== undefined) parseCpus(String(s.cpus), doc.placeOf(["cpus"]));
  return s;
}
