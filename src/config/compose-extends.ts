/**
 * `extends:` (Compose Specification, services): a service starts from
 * another one — in the same file, or in another `file:` — and its own keys
 * are merged over it by the same rules as override files. A service may
 * extend one that extends another; a cycle is an error at the `extends` key.
 */
import path from "node:path";
import { composeMerge } from "./compose-merge.js";
import { readComposeDoc, type ComposeReader } from "./compose-docs.js";
import { configFail } from "./foreign.js";
import { isMapping } from "./merge.js";
import type { YamlDoc } from "./yaml-doc.js";

const hint = "write extends: NAME, or extends: { service: NAME, file: other.yml } (Compose Specification)";

/** `doc` (read from `file`, absolute) with every service's `extends` applied. */
export function resolveExtends(doc: YamlDoc, file: string, env: NodeJS.ProcessEnv, r: ComposeReader): YamlDoc {
  const value = doc.value;
  if (!isMapping(value) || !isMapping(value["services"])) return doc;
  const services = value["services"];
  if (!Object.values(services).some((svc) => isMapping(svc) && svc["extends"] !== undefined)) return doc;
  const resolver = new Resolver(env, r);
  const out = Object.fromEntries(Object.keys(services).map((name) => [name, resolver.service(doc, file, name, [])]));
  return { ...doc, value: { ...value, services: out } };
}

class Resolver {
  private readonly files = new Map<string, YamlDoc>();

  constructor(
    private readonly env: NodeJS.ProcessEnv,
    private readonly reader: ComposeReader,
  ) {}

  /** Service `name` of `doc` with its extends chain applied; `stack` is the chain so far ("file#service"). */
  service(doc: YamlDoc, file: string, name: string, stack: readonly string[]): unknown {
    const services = (doc.value as Record<string, Record<string, unknown>>)["services"]!;
    const svc = services[name];
    if (!isMapping(svc) || svc["extends"] === undefined) return svc;
    const place = doc.keyPlaceOf(["services", name, "extends"]);
    const ext = svc["extends"];
    const ref = typeof ext === "string" ? { service: ext } : isMapping(ext) ? ext : undefined;
    if (ref === undefined || typeof ref["service"] !== "string" || (ref["file"] !== undefined && typeof ref["file"] !== "string")) {
      return configFail(`services.${name}.extends: expected a service name or { service, file }`, place, hint);
    }
    const baseFile = typeof ref["file"] === "string" ? path.resolve(path.dirname(file), ref["file"]) : file;
    const baseDoc = baseFile === file ? doc : this.read(baseFile, place);
    const id = `${baseFile}#${ref["service"]}`;
    const chain = [...stack, `${file}#${name}`];
    if (chain.includes(id)) {
      configFail(`extends cycle: ${[...chain, id].map((s) => s.slice(s.indexOf("#") + 1)).join(" -> ")}`, place, "a service cannot extend itself, directly or through others");
    }
    const baseServices = isMapping(baseDoc.value) ? baseDoc.value["services"] : undefined;
    if (!isMapping(baseServices) || !Object.hasOwn(baseServices, ref["service"])) {
      configFail(`service ${name} extends ${ref["service"]}, which is not a service in ${baseDoc.file}`, place, hint);
    }
    const base = this.service(baseDoc, baseFile, ref["service"], chain);
    const { extends: _ignored, ...own } = svc;
    const { extends: _baseIgnored, ...baseOwn } = isMapping(base) ? base : {};
    return composeMerge(baseOwn, own, ["services", name]);
  }

  private read(file: string, place: string): YamlDoc {
    let doc = this.files.get(file);
    if (doc === undefined) {
      doc = readComposeDoc(file, this.env, this.reader, place);
      this.files.set(file, doc);
    }
    return doc;
  }
}
