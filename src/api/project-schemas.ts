/**
 * The project routes' bodies (`skiff serve`, /projects/*): which project a
 * request means (its file on the server, the file's text posted with the
 * directory it belongs to, or only its name), and each verb's options.
 * Apart from schemas.ts so that the project API grows on its own.
 */
import { z } from "@hono/zod-openapi";

const strings = z.array(z.string());

/** Which project: exactly one of `name`, `content` (with `directory`), `files` or `directory` alone. */
export const projectSourceShape = {
  name: z.string().min(1).optional().openapi({ description: "an existing project, found by its VMs' labels (ps, down, stop, start, restart, pause, unpause: no file needed)", example: "demo" }),
  files: strings.min(1).optional().openapi({ description: "project files on the server (as -f: later ones override earlier ones); relative ones resolve against `directory`", example: ["/srv/demo/skiff.yml"] }),
  content: z.string().optional().openapi({ description: "the project file's text itself; needs `directory`, where its relative paths (bind mounts, provision scripts, layers) resolve on the server" }),
  filename: z
    .string()
    .regex(/^[^/]+$/, "a file name without a directory")
    .optional()
    .openapi({ description: "what `content` is called: decides its format (skiff.yml, pontoon.yml, VMFile.kdl, compose.yaml) and how errors place it (default skiff.yml)", example: "skiff.yml" }),
  directory: z.string().regex(/^\//, "an absolute path on the server").optional().openapi({ description: "the project's directory on the server; alone: its project file is found there as `skiff up` finds it", example: "/srv/demo" }),
  projectName: z.string().min(1).optional().openapi({ description: "as -p: the project's name instead of the file's `name:` or the directory's" }),
};

export const projectSourceSchema = z.object(projectSourceShape).strict().openapi("ProjectSource");

export const projectUpSchema = z
  .object({
    ...projectSourceShape,
    services: strings.optional().openapi({ description: "only these services (and what they depend on)" }),
    build: z.boolean().optional().openapi({ description: "rebuild layer images even when cached" }),
    noProvision: z.boolean().optional(),
    wait: z.boolean().optional().openapi({ description: "wait until every service with a healthcheck is healthy" }),
    removeOrphans: z.boolean().optional(),
  })
  .strict()
  .openapi("ProjectUp");

export const projectDownSchema = z
  .object({
    ...projectSourceShape,
    volumes: z.boolean().optional().openapi({ description: "also remove the project's named volumes (their data is lost)" }),
    destroy: z.boolean().optional().openapi({ description: "remove everything the project made, the images built from its layers too" }),
  })
  .strict()
  .openapi("ProjectDown");

export const projectPsSchema = z
  .object({ ...projectSourceShape, all: z.boolean().optional().openapi({ description: "also stopped VMs" }) })
  .strict()
  .openapi("ProjectPs");

export const projectServicesSchema = z
  .object({ ...projectSourceShape, services: strings.optional().openapi({ description: "only these services' VMs (default all)" }) })
  .strict()
  .openapi("ProjectServices");

export const projectListSchema = z
  .array(z.object({ name: z.string(), vms: z.number().int(), running: z.number().int() }))
  .openapi("ProjectList");

export type ProjectSource = z.infer<typeof projectSourceSchema>;
export type ProjectUpBody = z.infer<typeof projectUpSchema>;
export type ProjectDownBody = z.infer<typeof projectDownSchema>;
