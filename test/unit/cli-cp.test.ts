/** The warning `skiff cp` prints for what a copy out of a VM did not bring over as it was. */
import { describe, expect, it } from "vitest";
import { copyWarning } from "../../src/cli/commands/cp.js";

const report = (devices: number, fifos: number, other: number, setidCleared: number) => ({ skipped: { devices, fifos, other }, setidCleared });

describe("copyWarning", () => {
  it("is silent when everything came over", () => {
    expect(copyWarning(report(0, 0, 0, 0), "web:/srv")).toBeUndefined();
  });

  it("counts device nodes and fifos, which -a would keep", () => {
    expect(copyWarning(report(2, 1, 0, 0), "web:/dev")).toBe("skiff: warning: skipped 2 device nodes and 1 fifo from web:/dev (not copied: use -a to keep them)");
  });

  it("counts cleared setuid/setgid bits, alone or with skipped entries", () => {
    expect(copyWarning(report(0, 0, 0, 1), "web:/usr/bin")).toBe("skiff: warning: cleared setuid/setgid bits on 1 file from web:/usr/bin (use -a to keep them)");
    expect(copyWarning(report(1, 2, 0, 3), "web:/")).toBe(
      "skiff: warning: skipped 1 device node and 2 fifos, cleared setuid/setgid bits on 3 files from web:/ (use -a to keep them)",
    );
  });

  it("entries of unknown types get no -a advice: no flag brings them over", () => {
    expect(copyWarning(report(0, 0, 2, 0), "web:/x")).toBe("skiff: warning: skipped 2 entries of types skiff does not copy from web:/x");
  });
});
