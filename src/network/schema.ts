/**
 * Schemas of what networks leave on disk: a network's record
 * (<home>/networks/NAME.json) and a VM's place on one (inside its
 * config.json), checked when read back (src/store/record.ts). The types
 * stay the documented interfaces of types.ts; `schemaFor` keeps the two
 * equal. Values that reach host commands (the bridge's name, the id in nft
 * and alias names) are held to the same rules as at create. Built with
 * zod/mini, as every record `ps` reads (src/store/record.ts says why).
 */
import * as z from "zod/v4/mini";
import { isoTimeSchema, portSchema, schemaFor } from "../store/record-schema.js";
import { maxIfNameLength } from "./ifnames.js";
import { parseIpv4 } from "./ipam.js";
import type { NetworkAttachment, NetworkRecord } from "./types.js";

export const ipv4Schema = z.string().check(z.refine((s) => parseIpv4(s) !== undefined, "expected an IPv4 address"));

const driver = z.enum(["private", "bridge", "link"]);

export const networkRecordSchema = schemaFor<NetworkRecord>()(
  z.object({
    schemaVersion: z.literal(1),
    name: z.string().check(z.minLength(1)),
    id: z.string().check(z.regex(/^[A-Za-z0-9]{1,64}$/, "expected letters and digits")),
    driver,
    subnet: z.string().check(z.regex(/^[\d.]+\/\d{1,2}$/, "expected a subnet such as 10.90.3.0/24")),
    gateway: z.optional(ipv4Schema),
    masquerade: z.boolean(),
    internal: z.boolean(),
    bridge: z.optional(z.string().check(z.regex(new RegExp(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,${maxIfNameLength - 1}}$`), "expected an interface name"))),
    mcast: z.optional(z.object({ group: ipv4Schema, port: portSchema })),
    labels: z.record(z.string(), z.string()),
    createdAt: isoTimeSchema,
  }),
);

export const networkAttachmentSchema = schemaFor<NetworkAttachment>()(
  z.object({
    network: z.string().check(z.minLength(1)),
    driver,
    ip: ipv4Schema,
    prefix: z.number().check(z.int(), z.gte(0), z.lte(32)),
    mac: z.string().check(z.regex(/^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/i, "expected a MAC address")),
    slot: z.optional(z.number().check(z.int(), z.gte(0), z.lte(1))),
    gateway: z.optional(ipv4Schema),
  }),
);
