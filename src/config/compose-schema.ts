/**
 * The Compose Specification's keys, as far as skiff reads them. Every key the
 * specification has is either translated (typed here) or listed in
 * `keysWithoutMeaning` with the reason it cannot mean anything for a VM (a
 * warning); a key in neither is a typo and an error. `x-*` extension keys are
 * left out before validation, as compose ignores them.
 */
import { z } from "zod/v4";

const scalar = z.union([z.string(), z.number(), z.boolean()]);
const stringOrList = z.union([z.string(), z.array(z.string())]);
/** environment, labels: a map, or a list of KEY=VALUE. */
const mapOrList = z.union([z.record(z.string(), z.union([scalar, z.null()])), z.array(z.string())]);
const duration = z.union([z.string(), z.number()]);
const size = z.union([z.string(), z.number()]);

const isolation = "a VM is isolated by its hypervisor and runs its own kernel; container isolation settings do not apply";
const tuning = "a VM gets whole vCPUs and a fixed memory size; use cpus and mem_limit (or deploy.resources.limits)";
const notInGuest = "skiff does not configure this in the guest";

/** Compose service keys that mean nothing for a microVM, with the reason the warning gives. */
export const keysWithoutMeaning: Record<string, string> = {
  build: "skiff does not run Dockerfiles; use layers (in a skiff.yml) or an image",
  privileged: isolation,
  cap_add: isolation,
  cap_drop: isolation,
  security_opt: isolation,
  userns_mode: isolation,
  cgroup: isolation,
  cgroup_parent: isolation,
  device_cgroup_rules: isolation,
  pid: isolation,
  ipc: isolation,
  uts: isolation,
  isolation,
  runtime: isolation,
  read_only: isolation,
  sysctls: isolation,
  oom_kill_disable: isolation,
  oom_score_adj: isolation,
  pids_limit: isolation,
  shm_size: isolation,
  ulimits: isolation,
  group_add: isolation,
  cpu_count: tuning,
  cpu_percent: tuning,
  cpu_shares: tuning,
  cpu_period: tuning,
  cpu_quota: tuning,
  cpu_rt_runtime: tuning,
  cpu_rt_period: tuning,
  cpuset: tuning,
  mem_reservation: tuning,
  mem_swappiness: tuning,
  memswap_limit: tuning,
  blkio_config: tuning,
  devices: "skiff passes no host devices into VMs",
  gpus: "skiff passes no host devices into VMs",
  tmpfs: "skiff mounts no tmpfs for a service; mount one from the command or a provision step",
  logging: "a VM's console and service output go to `skiff logs`",
  network_mode: "a VM has its own network stack; use networks",
  links: "services reach each other over their networks",
  external_links: "services reach each other over their networks",
  expose: "every port of a VM is reachable from the networks it is on",
  extra_hosts: notInGuest,
  dns_opt: notInGuest,
  dns_search: notInGuest,
  domainname: notInGuest,
  mac_address: notInGuest,
  stdin_open: "use `skiff exec -it` for an interactive shell",
  tty: "use `skiff exec -it` for an interactive shell",
  attach: "use `skiff logs -f`",
  init: "skiff's own init is PID 1 in every VM",
  stop_signal: "skiff stops a VM by powering it down",
  stop_grace_period: "skiff stops a VM by powering it down",
  platform: "skiff runs x86_64 guests",
  pull_policy: "skiff pulls an image when it is not in its store",
  configs: "share files with a bind mount in volumes, or a provision step",
  secrets: "share files with a bind mount in volumes, or a provision step",
  container_name: "VM names are skiff's (<project>-<service>-<n>)",
  volumes_from: "share a named volume instead",
  credential_spec: "Windows containers only",
  storage_opt: "a VM's disk is a qcow2 overlay skiff sizes",
  label_file: "give labels in the file",
  annotations: "a VM has no OCI annotations",
  develop: "compose watch is not supported",
  post_start: "use a provision step",
  pre_stop: "skiff stops a VM by powering it down",
  models: "skiff runs no model runners",
  provider: "skiff runs no compose providers",
  use_api_socket: "there is no Docker engine in a skiff VM",
};

const port = z.union([
  z.string(),
  z.number(),
  z.strictObject({
    target: z.union([z.number(), z.string()]),
    published: z.union([z.number(), z.string()]).optional(),
    host_ip: z.string().optional(),
    protocol: z.string().optional(),
    mode: z.string().optional(),
    name: z.string().optional(),
    app_protocol: z.string().optional(),
  }),
]);

const volumeMount = z.union([
  z.string(),
  z.strictObject({
    type: z.enum(["volume", "bind", "tmpfs", "npipe", "cluster", "image"]),
    source: z.string().optional(),
    target: z.string(),
    read_only: z.boolean().optional(),
    consistency: z.string().optional(),
    bind: z.record(z.string(), z.unknown()).optional(),
    volume: z.record(z.string(), z.unknown()).optional(),
    tmpfs: z.record(z.string(), z.unknown()).optional(),
    image: z.record(z.string(), z.unknown()).optional(),
  }),
]);

const serviceNetworks = z.union([
  z.array(z.string()),
  z.record(
    z.string(),
    z.union([
      z.null(),
      z.strictObject({
        aliases: z.array(z.string()).optional(),
        ipv4_address: z.string().optional(),
        ipv6_address: z.string().optional(),
        link_local_ips: z.array(z.string()).optional(),
        mac_address: z.string().optional(),
        driver_opts: z.record(z.string(), z.unknown()).optional(),
        priority: z.number().optional(),
        gw_priority: z.number().optional(),
        interface_name: z.string().optional(),
      }),
    ]),
  ),
]);

export const dependencyConditions = ["service_started", "service_healthy", "service_completed_successfully"] as const;

const dependsOn = z.union([
  z.array(z.string()),
  z.record(
    z.string(),
    z.strictObject({
      condition: z.enum(dependencyConditions).optional(),
      restart: z.boolean().optional(),
      required: z.boolean().optional(),
    }),
  ),
]);

const healthcheck = z.strictObject({
  test: stringOrList.optional(),
  interval: duration.optional(),
  timeout: duration.optional(),
  retries: z.number().int().nonnegative().optional(),
  start_period: duration.optional(),
  start_interval: duration.optional(),
  disable: z.boolean().optional(),
});

const resources = z.strictObject({
  cpus: z.union([z.string(), z.number()]).optional(),
  memory: size.optional(),
  pids: z.number().optional(),
  devices: z.unknown().optional(),
  generic_resources: z.unknown().optional(),
});

const deploy = z.strictObject({
  replicas: z.number().int().nonnegative().optional(),
  resources: z.strictObject({ limits: resources.optional(), reservations: resources.optional() }).optional(),
  mode: z.string().optional(),
  endpoint_mode: z.string().optional(),
  labels: mapOrList.optional(),
  placement: z.unknown().optional(),
  restart_policy: z.unknown().optional(),
  rollback_config: z.unknown().optional(),
  update_config: z.unknown().optional(),
});

const envFile = z.union([
  z.string(),
  z.array(z.union([z.string(), z.strictObject({ path: z.string(), required: z.boolean().optional(), format: z.string().optional() })])),
]);

export const composeService = z.strictObject({
  image: z.string().optional(),
  command: z.union([stringOrList, z.null()]).optional(),
  entrypoint: z.union([stringOrList, z.null()]).optional(),
  environment: mapOrList.optional(),
  env_file: envFile.optional(),
  ports: z.array(port).optional(),
  volumes: z.array(volumeMount).optional(),
  networks: serviceNetworks.optional(),
  depends_on: dependsOn.optional(),
  healthcheck: healthcheck.optional(),
  restart: z.string().optional(),
  hostname: z.string().optional(),
  user: z.union([z.string(), z.number()]).optional(),
  working_dir: z.string().optional(),
  dns: stringOrList.optional(),
  deploy: deploy.optional(),
  scale: z.number().int().nonnegative().optional(),
  mem_limit: size.optional(),
  cpus: z.union([z.string(), z.number()]).optional(),
  labels: mapOrList.optional(),
  profiles: z.array(z.string()).optional(),
  extends: z.unknown().optional(),
  // Warned about (keysWithoutMeaning), named here because the translation looks at them.
  build: z.unknown().optional(),
  network_mode: z.unknown().optional(),
  ...Object.fromEntries(Object.keys(keysWithoutMeaning).map((k) => [k, z.unknown().optional()])),
});
export type ComposeService = z.infer<typeof composeService>;

export const composeNetwork = z.union([
  z.null(),
  z.strictObject({
    driver: z.string().optional(),
    driver_opts: z.record(z.string(), z.unknown()).optional(),
    attachable: z.boolean().optional(),
    enable_ipv4: z.boolean().optional(),
    enable_ipv6: z.boolean().optional(),
    external: z.union([z.boolean(), z.record(z.string(), z.unknown())]).optional(),
    internal: z.boolean().optional(),
    labels: mapOrList.optional(),
    name: z.string().optional(),
    ipam: z
      .strictObject({
        driver: z.string().optional(),
        config: z
          .array(
            z.strictObject({
              subnet: z.string().optional(),
              ip_range: z.string().optional(),
              gateway: z.string().optional(),
              aux_addresses: z.record(z.string(), z.string()).optional(),
            }),
          )
          .optional(),
        options: z.record(z.string(), z.unknown()).optional(),
      })
      .optional(),
  }),
]);

export const composeVolume = z.union([
  z.null(),
  z.strictObject({
    driver: z.string().optional(),
    driver_opts: z.record(z.string(), z.unknown()).optional(),
    external: z.union([z.boolean(), z.record(z.string(), z.unknown())]).optional(),
    labels: mapOrList.optional(),
    name: z.string().optional(),
  }),
]);

export const composeFile = z.strictObject({
  version: z.unknown().optional(),
  name: z.string().optional(),
  services: z.record(z.string(), composeService).optional(),
  networks: z.record(z.string(), composeNetwork).optional(),
  volumes: z.record(z.string(), composeVolume).optional(),
  configs: z.unknown().optional(),
  secrets: z.unknown().optional(),
  include: z.unknown().optional(),
  models: z.unknown().optional(),
});
export type ComposeFile = z.infer<typeof composeFile>;
