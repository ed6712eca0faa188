/**
 * skiff.yml (one or more files, already parsed) → ProjectSpec. The schema
 * checks each value; this checks what needs the whole project (names
 * declared) and applies `defaults`; what every format shares (no dependency
 * cycle, …) validate.ts checks after. Every problem found is reported
 * together, each at the file:line:column that wrote it.
 */
import { parseDiskSize } from "../util/units.js";
import { validateNetworkName } from "../network/store.js";
import { parseIpv4, parseSubnet, subnetContains } from "../network/ipam.js";
import { namePattern } from "../util/names.js";
import type { ProjectNetwork, ProjectSpec, ProjectVolume, ServiceSpec } from "../project/types.js";
import { hostPath, type LoaderContext } from "./context.js";
import { placed } from "./item-place.js";
import { deepMerge, isMapping, mergeDocs, reach } from "./merge.js";
import { skiffFileSchema, type ServiceInput, type SkiffFile } from "./schema.js";
import { serviceFrom } from "./skiff-service.js";
import { attempt, configError, problemsError, type ConfigProblem } from "./zod-error.js";
import type { YamlDoc, YamlPath } from "./yaml-doc.js";
import { safeParseUserKeys } from "../util/user-keys.js";

/** Service names become part of VM names and host names. */
const serviceName = /^[a-z0-9][a-z0-9_-]{0,62}$/;
const defaultVolumeBytes = 2 ** 30;
/** A service that names any image source replaces all of the defaults' ones (else `defaults: image` + `image-url` clash). */
const imageKeys = ["image", "image-url", "image_url"];

export function skiffToProject(docs: YamlDoc[], ctx: LoaderContext): ProjectSpec {
  const doc = mergeDocs(docs);
  const parsed = safeParseUserKeys(skiffFileSchema, doc.value, { reportInput: true });
  if (!parsed.success) throw configError(parsed.error, doc.placeOf, doc.keyPlaceOf, doc.file);
  const file = parsed.data;
  const problems: ConfigProblem[] = [];
  const networks = networksOf(file, doc, problems);
  const volumes = volumesOf(file, doc, problems);
  const netMap = new Map(networks.map((n) => [n.name, n.subnet === undefined ? {} : { subnet: n.subnet }]));
  const volSet = new Set(volumes.map((v) => v.name));
  const services = Object.entries(file.services).map(([name, own]): ServiceSpec => {
    if (!serviceName.test(name)) {
      problems.push({ place: doc.keyPlaceOf(["services", name]), message: `invalid service name ${JSON.stringify(name)}`, hint: "use lowercase letters, digits, '-' and '_', starting with a letter or digit" });
    }
    const defaults = Object.fromEntries(Object.entries(file.defaults ?? {}).filter(([k]) => !imageKeys.some((i) => i in own) || !imageKeys.includes(k)));
    const where = (rest: YamlPath): YamlPath => (reach(own, rest) === rest.length || reach(defaults, rest) < rest.length ? ["services", name, ...rest] : ["defaults", ...rest]);
    return serviceFrom(
      {
        name,
        svc: deepMerge(defaults, own) as ServiceInput,
        own: (key) => Object.hasOwn(own, key),
        at: (...rest) => doc.placeOf(where(rest)),
        keyAt: (...rest) => doc.keyPlaceOf(where(rest)),
        dir: ctx.dir,
        env: ctx.env ?? process.env,
        networks: netMap,
        volumes: volSet,
        problems,
      },
      doc.keyPlaceOf(["services", name]),
    );
  });
  checkDependencies(services, doc, problems);
  if (problems.length > 0) throw problemsError(problems, doc.file);
  return {
    name: ctx.projectName,
    dir: ctx.dir,
    format: "skiff",
    files: ctx.files,
    services,
    networks,
    volumes,
    layerPaths: (file.layers ?? []).map((p) => hostPath(ctx.dir, p, ctx.env ?? process.env)),
    warnings: [],
    ...(file.mcp === undefined ? {} : { mcp: file.mcp }),
  };
}

function networksOf(file: SkiffFile, doc: YamlDoc, problems: ConfigProblem[]): ProjectNetwork[] {
  return Object.entries(file.networks ?? {}).map(([name, n]) => {
    const place = doc.keyPlaceOf(["networks", name]);
    attempt(problems, place, "networks: ", () => validateNetworkName(name, place));
    if (n?.link === true && n.driver !== undefined && n.driver !== "link") {
      problems.push({ place: doc.keyPlaceOf(["networks", name, "link"]), message: `networks.${name}: link: true contradicts driver: ${n.driver}` });
    }
    const net: ProjectNetwork = { name, driver: n?.driver ?? (n?.link === true ? "link" : "private"), masquerade: n?.masquerade ?? false, internal: n?.internal ?? false, place };
    if (n?.subnet !== undefined) net.subnet = n.subnet;
    if (n?.gateway !== undefined) {
      net.gateway = n.gateway;
      const at = doc.placeOf(["networks", name, "gateway"]);
      if (n.subnet === undefined) problems.push({ place: at, message: `networks.${name}.gateway: a gateway needs a subnet`, hint: "add subnet: (a CIDR such as 10.90.0.0/24) next to it" });
      else if (!subnetContains(parseSubnet(n.subnet), parseIpv4(n.gateway)!)) problems.push({ place: at, message: `networks.${name}.gateway: ${n.gateway} is outside ${n.subnet}` });
    }
    return net;
  });
}

function volumesOf(file: SkiffFile, doc: YamlDoc, problems: ConfigProblem[]): ProjectVolume[] {
  return Object.entries(file.volumes ?? {}).map(([name, v]) => {
    const place = doc.keyPlaceOf(["volumes", name]);
    if (!namePattern.test(name)) problems.push({ place, message: `volumes: invalid volume name ${JSON.stringify(name)}`, hint: "use letters, digits, '_', '.' or '-', starting with a letter or digit" });
    // The schema checked the size's grammar.
    const sizeBytes = v?.size === undefined ? defaultVolumeBytes : parseDiskSize(v.size);
    return { name, sizeBytes, place };
  });
}

function checkDependencies(services: readonly ServiceSpec[], doc: YamlDoc, problems: ConfigProblem[]): void {
  const names = new Set(services.map((s) => s.name));
  const dependsPlace = (s: string, dep: string) => {
    const own = (doc.value as { services?: Record<string, unknown> }).services?.[s];
    const deps = isMapping(own) ? own["depends_on"] : undefined;
    const base = isMapping(own) && "depends_on" in own ? ["services", s, "depends_on"] : ["defaults", "depends_on"];
    return Array.isArray(deps) ? doc.placeOf([...base, deps.indexOf(dep)]) : doc.keyPlaceOf([...base, dep]);
  };
  for (const s of services) {
    for (const d of s.dependsOn) {
      // Cycles and conditions are checked on the finished project (validate.ts), at this place.
      placed(d, dependsPlace(s.name, d.service));
      if (!names.has(d.service)) {
        problems.push({ place: dependsPlace(s.name, d.service), message: `services.${s.name}.depends_on: no service named ${JSON.stringify(d.service)}`, hint: `services here: ${[...names].join(", ")}` });
      }
    }
  }
}
