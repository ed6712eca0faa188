/** Snapshot names: as VM names, and unique among snapshots (a name finds one snapshot). */
import { SkiffError } from "../errors.js";
import { validateName } from "../util/names.js";
import { listSnapshots, type SnapshotPlaces } from "./store.js";

export async function checkSnapshotName(places: SnapshotPlaces, name: string): Promise<void> {
  validateName(name, "name", "snapshot");
  if (/^[0-9a-f]{4,64}$/.test(name)) {
    // It would read as an id prefix.
    throw new SkiffError("ERR_SKIFF_BAD_NAME", `snapshot name ${name} looks like an id`, { place: "name", hint: "use a name with a letter beyond a-f" });
  }
  if ((await listSnapshots(places)).some((s) => s.name === name)) {
    throw new SkiffError("ERR_SKIFF_NAME_IN_USE", `a snapshot named ${name} exists`, {
      place: "name",
      hint: `choose another name, or remove it first (\`skiff snapshot rm ${name}\`)`,
    });
  }
}
