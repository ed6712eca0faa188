/**
 * Named volumes in snapshots (src/snapshot/volumes.ts) and the clock after
 * unpause (src/snapshot/clock.ts): the pure parts. The copies, the rebase
 * and the restored VMs' clones are driven against real VMs in
 * test/vm/snapshot.test.ts.
 */
import { describe, expect, it } from "vitest";
import { clockNeedsSetting, clockSlackMs } from "../../src/snapshot/clock.js";
import type { VolumeLayer } from "../../src/snapshot/store.js";
import { cloneMounts, clonesNote, layerRefs, volumeCopies } from "../../src/snapshot/volumes.js";
import type { Mount } from "../../src/spec/machine.js";
import type { VmRecord } from "../../src/store/store.js";
import { vmPaths } from "../../src/store/vmdir.js";
import { machineSpec } from "./fixtures/spec.js";

function record(mounts: Mount[], snapshot?: VmRecord["config"]["snapshot"]): VmRecord {
  const id = "0123456789abcdef";
  return {
    id,
    name: "db",
    paths: vmPaths("/h", id),
    config: { schemaVersion: 1, id, createdAt: new Date(0).toISOString(), spec: machineSpec("db", { mounts }), ...(snapshot === undefined ? {} : { snapshot }) },
    complete: true,
  };
}

const layer = (over: Partial<VolumeLayer>): VolumeLayer => ({ volume: "data", target: "/data", readOnly: false, file: "volume-0.raw", format: "raw", bytes: 4096, ...over });

describe("volumes in a capture", () => {
  it("copies each named volume's raw disk, and a clone's qcow2 overlay, to volume-N by mount position", () => {
    const vm = record(
      [
        { kind: "volume", volume: "data", target: "/data", readOnly: false },
        { kind: "clone", volume: "logs", target: "/logs", readOnly: false },
      ],
      { id: "s", disk: "/h/snapshots/s/disk.qcow2", volumes: [{ target: "/logs", layer: "/h/snapshots/s/volume-3.raw", format: "raw" }] },
    );
    expect(volumeCopies({ home: "/h" }, vm)).toEqual([
      { from: "/h/volumes/data/disk.ext4", layer: { volume: "data", target: "/data", readOnly: false, file: "volume-0.raw", format: "raw" } },
      { from: `${vm.paths.dir}/volumes/1.qcow2`, layer: { volume: "logs", target: "/logs", readOnly: false, file: "volume-1.qcow2", format: "qcow2" } },
    ]);
  });

  it("copies nothing for a VM without volumes", () => {
    expect(volumeCopies({ home: "/h" }, record([]))).toEqual([]);
  });
});

describe("volumes in a restore", () => {
  it("turns every volume into a clone at the same path, keeping order and read-only", () => {
    expect(
      cloneMounts([
        { kind: "volume", volume: "data", target: "/data", readOnly: false },
        { kind: "clone", volume: "logs", target: "/logs", readOnly: true },
      ]),
    ).toEqual([
      { kind: "clone", volume: "data", target: "/data", readOnly: false },
      { kind: "clone", volume: "logs", target: "/logs", readOnly: true },
    ]);
    expect(cloneMounts(undefined)).toBeUndefined();
  });

  it("records each clone's layer in the snapshot's directory, by target", () => {
    expect(layerRefs("/h/snapshots/s", [layer({}), layer({ target: "/logs", file: "volume-1.qcow2", format: "qcow2" })])).toEqual({
      volumes: [
        { target: "/data", layer: "/h/snapshots/s/volume-0.raw", format: "raw" },
        { target: "/logs", layer: "/h/snapshots/s/volume-1.qcow2", format: "qcow2" },
      ],
    });
    expect(layerRefs("/h/snapshots/s", undefined)).toEqual({});
    expect(layerRefs("/h/snapshots/s", [])).toEqual({});
  });

  it("says that a restored VM's volumes are private clones, naming them", () => {
    expect(clonesNote([layer({})])).toBe("volumes are private copy-on-write clones of their state at the snapshot, not the named volumes: data at /data");
    expect(clonesNote(undefined)).toBeUndefined();
  });
});

describe("the clock after unpause", () => {
  const now = Date.parse("2026-12-03T12:00:00.000Z");
  it("is set after a pause of at least the slack, or of unknown length", () => {
    expect(clockNeedsSetting(new Date(now - clockSlackMs).toISOString(), now)).toBe(true);
    expect(clockNeedsSetting(new Date(now - 5 * 60_000).toISOString(), now)).toBe(true);
    expect(clockNeedsSetting(undefined, now)).toBe(true);
    expect(clockNeedsSetting("not a time", now)).toBe(true);
  });

  it("is left alone after a short pause", () => {
    expect(clockNeedsSetting(new Date(now - clockSlackMs + 1).toISOString(), now)).toBe(false);
    expect(clockNeedsSetting(new Date(now).toISOString(), now)).toBe(false);
  });
});
