/**
 * What a project's objects are called, and the labels that tie them to it.
 * Names follow docker compose (`<project>-<service>-<n>`, `<project>_<net>`)
 * so users read them without a legend; the labels, not the names, decide
 * what belongs to a project.
 */

export const labels = {
  project: "skiff.project",
  service: "skiff.service",
  replica: "skiff.replica",
  /** Hash of the service's effective definition (desired.ts): a different hash means recreate. */
  specHash: "skiff.spec-hash",
  /** The project file(s), for `ps` and for humans. */
  files: "skiff.config-files",
  /** Set once the service's provisioners ran to the end on this VM. */
  provisioned: "skiff.provisioned",
} as const;

export function vmName(project: string, service: string, replica: number): string {
  return `${project}-${service}-${replica}`;
}

export function networkName(project: string, network: string): string {
  return `${project}_${network}`;
}

export function volumeName(project: string, volume: string): string {
  return `${project}_${volume}`;
}

export function projectLabels(project: string, extra: Record<string, string> = {}): Record<string, string> {
  return { [labels.project]: project, ...extra };
}
