/**
 * skiff.yml's JSON Schema, made from the zod schema that validates it (one
 * source of truth), for editors: `skiff config schema > skiff.schema.json`,
 * then point the YAML language server at it.
 */
import { z } from "zod/v4";
import { skiffFileSchema } from "./schema.js";

export function skiffJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(skiffFileSchema, { target: "draft-2020-12", unrepresentable: "any" }) as Record<string, unknown>;
  return {
    $schema: "https://json-schema.org/draft/2020-12/schema",
    title: "skiff.yml",
    description: "A skiff project: services (microVMs), their networks, volumes and layers. See docs/skiff-yml.md.",
    ...schema,
  };
}
