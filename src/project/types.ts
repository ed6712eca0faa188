/**
 * A project: what a checked-in file (skiff.yml, pontoon.yml, VMFile.kdl,
 * docker-compose.yml) describes, translated into one internal shape. Every
 * loader in config/ produces a ProjectSpec; everything in project/ (up, down,
 * the spec hash) reads only this. Pure data, paths absolute, sizes in units
 * the engine takes, every field defaulted except where absence means
 * something ("the image's own").
 */
import type { PortForward, RestartPolicy } from "../pure.js";
import type { EgressRequest } from "../pure.js";

/** Which file format a project came from. */
export type ProjectFormat = "skiff" | "pontoon" | "vmfile" | "compose";

/** Where something was written: "skiff.yml:12:5". */
export type Place = string;

export interface ProjectSpec {
  /** Project name: `-p`, else the directory name, lowercased to [a-z0-9_-]. */
  name: string;
  /** Directory of the (first) file: relative paths in the files are resolved against it. */
  dir: string;
  format: ProjectFormat;
  /** The files read, in override order (absolute). */
  files: string[];
  /** Services in file order. */
  services: ServiceSpec[];
  networks: ProjectNetwork[];
  volumes: ProjectVolume[];
  /** Extra layer search paths (absolute), searched after `<dir>/layers` and before skiff's standard library. */
  layerPaths: string[];
  /** Keys with no meaning here (compose's `privileged`, …): reported once, never silently dropped. */
  warnings: ConfigWarning[];
  /** The top-level `mcp` key (skiff.yml, pontoon.yml): the MCP server's defaults, hide_tools and per-VM rules (src/mcp/policy.ts reads it). */
  mcp?: unknown;
}

export interface ConfigWarning {
  message: string;
  place: Place;
}

export interface ProjectNetwork {
  /** Name inside the project; the skiff network is `<project>_<name>`. */
  name: string;
  driver: "private" | "bridge" | "link";
  /** CIDR; absent: allocated when the network is made. */
  subnet?: string;
  gateway?: string;
  masquerade: boolean;
  internal: boolean;
  place: Place;
}

export interface ProjectVolume {
  /** Name inside the project; the skiff volume is `<project>_<name>`. */
  name: string;
  /** Size of the volume's disk in bytes (default 1 GiB). */
  sizeBytes: number;
  place: Place;
}

export type { RestartPolicy };

export interface ServiceNetwork {
  /** A network of the project (by its project name). */
  network: string;
  ipv4Address?: string;
  /** The default route goes through this address (a router VM). */
  gateway?: string;
  /** This VM NATs traffic from the other networks out of this one (a router VM). */
  masquerade: boolean;
}

export type ServiceVolume =
  /** A host directory shared live (virtio-9p). `source` is absolute. */
  | { kind: "bind"; source: string; target: string; readOnly: boolean }
  /** A project volume: a persistent disk mounted at `target`. */
  | { kind: "volume"; volume: string; target: string; readOnly: boolean };

export interface HealthCheck {
  /** argv run in the guest; a compose `CMD-SHELL x` becomes ["sh", "-c", "x"]. */
  test: string[];
  intervalMs: number;
  timeoutMs: number;
  retries: number;
  startPeriodMs: number;
}

export type ProvisionStep =
  | { kind: "shell"; inline: string; place: Place }
  /** `script`: a host file (absolute), uploaded and executed. */
  | { kind: "shell"; script: string; place: Place }
  /** `source` (host, absolute) → `destination` (guest). */
  | { kind: "file"; source: string; destination: string; place: Place };

export interface DependsOn {
  service: string;
  condition: "service_started" | "service_healthy";
}

export interface ServiceSpec {
  name: string;
  /** An OCI reference or a local image name. With `layers` and no image: the `debian` base. */
  image?: string;
  /** A cloud image (URL or path): booted on q35, reached over SSH. */
  imageUrl?: string;
  /** Layer names, in order (later layers win for the same path). */
  layers: string[];
  /** A kernel file (absolute; virtio drivers built in) or a kernel name (debian, skiff, a built id: src/kernel/built.ts) instead of the default. */
  kernel?: string;
  /** Extra kernel command line words ("svc.start=firewall"). */
  kernelArgs: string[];
  memoryMiB?: number;
  cpus?: number;
  /** Cloud images: grow the disk to this size. */
  diskBytes?: number;
  hostname?: string;
  environment: Record<string, string>;
  command?: string[];
  entrypoint?: string[];
  user?: string;
  workingDir?: string;
  /** Whether the VM has the user-networking NIC (eth0): true unless the file says otherwise. */
  userNetwork: boolean;
  networks: ServiceNetwork[];
  ports: PortForward[];
  dns: string[];
  volumes: ServiceVolume[];
  dependsOn: DependsOn[];
  healthcheck?: HealthCheck;
  restart: RestartPolicy;
  /** Where the VM may connect (src/network/egress.ts); absent: anywhere but the host's loopback. */
  egress?: EgressRequest;
  replicas: number;
  /** The file's own labels (compose `labels`), put on the service's VMs beside skiff's project labels. */
  labels?: Record<string, string>;
  /** Cloud images: the SSH user skiff logs in as. */
  ssh?: { user?: string };
  /** Cloud images: user-data (absolute path of a file, or inline text) merged into skiff's seed. */
  cloudInit?: { userDataPath?: string; userData?: string; hostname?: string };
  provision: ProvisionStep[];
  /** The service's `mcp` block (the file's `defaults.mcp` under the service's own): its VMs' rule in the MCP server. */
  mcp?: McpSettings;
  place: Place;
}

/** A service's `mcp` block: its keys as written (JSON values); src/mcp/policy.ts checks and reads them. */
export type McpSettings = Record<string, unknown>;
