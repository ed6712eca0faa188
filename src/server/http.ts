/**
 * What every route shares: JSON and error replies, the validation hook that
 * turns zod's complaints into ERR_SKIFF_USAGE naming the field, and the
 * response entries of the OpenAPI document.
 */
import { z, type RouteConfig } from "@hono/zod-openapi";
import type { ZodError } from "zod";
import { SkiffError } from "../pure.js";
import { httpStatusOf, toErrorBody } from "../api/errors.js";
import { errorBodySchema } from "../api/schemas.js";

/**
 * What handlers return. zod-openapi would type each handler's reply by its
 * response schema; those schemas describe the library's types for the
 * document and let new fields through, so the library's own types (VmInfo,
 * SnapshotInfo…) stay the truth and replies are plain Responses.
 */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export type Reply = any;

export function json(data: unknown, status = 200): Reply {
  return new Response(JSON.stringify(data ?? null), { status, headers: { "content-type": "application/json" } });
}

export function errorResponse(err: unknown): Reply {
  const body = toErrorBody(err);
  return json(body, httpStatusOf(body.code));
}

/** A whole HTTP/1.1 answer carrying `err`, for sockets hono never sees (upgrades, requests node refused); the connection closes. */
export function rawErrorResponse(status: number, reason: string, err: unknown): string {
  const body = JSON.stringify(toErrorBody(err));
  return `HTTP/1.1 ${status} ${reason}\r\ncontent-type: application/json\r\ncontent-length: ${Buffer.byteLength(body)}\r\nconnection: close\r\n\r\n${body}`;
}

/** zod's first problem as a SkiffError: an unknown field by its name, anything else by its path. */
export function validationError(error: ZodError, target: string): SkiffError {
  const issue = error.issues[0];
  if (issue === undefined) return new SkiffError("ERR_SKIFF_USAGE", `invalid ${target}`);
  if (issue.code === "unrecognized_keys") {
    const key = issue.keys[0] ?? "";
    const field = [...issue.path, key].join(".");
    return new SkiffError("ERR_SKIFF_USAGE", `unknown field in the ${target}: ${field}`, {
      place: field,
      hint: "see /openapi.json for the fields this route takes",
    });
  }
  const field = issue.path.join(".");
  return new SkiffError("ERR_SKIFF_USAGE", `${field === "" ? target : field}: ${issue.message}`, {
    ...(field === "" ? {} : { place: field }),
    hint: "see /openapi.json for what this route takes",
  });
}

/** Passed to OpenAPIHono as its defaultHook: a request that fails its schema never reaches the handler. */
export function validationHook(result: { success: boolean; error?: ZodError; target?: string }): Response | undefined {
  if (result.success || result.error === undefined) return undefined;
  const target = result.target === "json" ? "body" : result.target === "param" ? "path" : (result.target ?? "request");
  return errorResponse(validationError(result.error, target));
}

const errorContent = { "application/json": { schema: errorBodySchema } };

/** The error answers every route may give. */
export const errorResponses = {
  400: { description: "bad input (ERR_SKIFF_USAGE and the ERR_SKIFF_BAD_* codes)", content: errorContent },
  401: { description: "no bearer token, or a wrong one (ERR_SKIFF_UNAUTHORIZED)", content: errorContent },
  404: { description: "no such VM, image, volume, network, snapshot or file", content: errorContent },
  409: { description: "conflicts with the resource's state", content: errorContent },
  500: { description: "the host failed (or an internal error)", content: errorContent },
  502: { description: "the VM or its guest failed", content: errorContent },
} satisfies RouteConfig["responses"];

/** A JSON response entry for the document. */
export function jsonResponse(schema: z.ZodTypeAny, description: string): { description: string; content: { "application/json": { schema: z.ZodTypeAny } } } {
  return { description, content: { "application/json": { schema } } };
}

/** A JSON request body entry for the document and the validator. */
export function jsonBody(schema: z.ZodTypeAny, required = true): { body: { required: boolean; content: { "application/json": { schema: z.ZodTypeAny } } } } {
  return { body: { required, content: { "application/json": { schema } } } };
}

export const nameParam = z.object({ name: z.string().min(1).openapi({ param: { name: "name", in: "path" }, example: "web" }) });

/** `?force=true`, `?all=1`: query flags. */
export const flag = z
  .enum(["true", "false", "1", "0"])
  .optional()
  .transform((v) => v === "true" || v === "1");
