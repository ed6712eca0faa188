/** A jail uid's claim counts as live throughout its VM's create, whenever the store renames `.tmp-ID` to ID. */
import { describe, expect, it } from "vitest";
import { claimLive } from "../../src/jail/claims.js";

const claim = { uid: 1600000001, home: "/h", vmId: "0123456789ab" };

/** The VM's directory as `.tmp-ID` until the `at`-th look at the disk, then as ID (the store's rename). */
function renamedAt(at: number): (path: string) => boolean {
  let looks = 0;
  return (path) => {
    looks += 1;
    const renamed = looks > at;
    return path === (renamed ? "/h/vms/0123456789ab" : "/h/vms/.tmp-0123456789ab");
  };
}

describe("claimLive", () => {
  it("is live before, during and after the rename of the VM's directory, whichever look it falls between", () => {
    for (let at = 0; at <= 2; at++) expect(claimLive(claim, renamedAt(at))).toBe(true);
  });

  it("is stale once the directory is gone under both names, and for a claim that names no VM", () => {
    expect(claimLive(claim, () => false)).toBe(false);
    expect(claimLive({ uid: 1, home: "", vmId: "" }, () => true)).toBe(false);
  });
});
