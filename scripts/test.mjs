// Runs the test suites one after the other and ends with one line that
// sums them all: `N passed, N failed` (`, N skipped` when some were).
//
//   node scripts/test.mjs              layering, unit, then vm (VM + end-to-end)
//   node scripts/test.mjs unit         one suite
//   node scripts/test.mjs vm -t boot   one suite, the rest goes to vitest
//
// Each suite writes vitest's JSON report to test-results/<suite>.json (the
// terminal gets the default reporter). A test file that fails to load, or
// a suite that exits non-zero without a failed test to show for it (a
// crash, an unhandled error), counts as one failure, so the last line never
// says "0 failed" when the exit code says otherwise.
//
// The layering suite is one check, not vitest: dependency-cruiser with
// .dependency-cruiser.cjs (no cycles; the CLI and src/project reach the
// library only through its public API). It prints the violations and counts
// as 1 passed or 1 failed.
import { spawn } from "node:child_process";
import { mkdirSync, readFileSync, rmSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const vitest = join(root, "node_modules", "vitest", "vitest.mjs");
const resultsDir = join(root, "test-results");

const depcruise = join(root, "node_modules", "dependency-cruiser", "bin", "dependency-cruise.mjs");

const suites = {
  layering: ".dependency-cruiser.cjs",
  unit: "vitest.unit.config.ts",
  vm: "vitest.vm.config.ts",
};

const args = process.argv.slice(2);
let chosen = Object.keys(suites);
if (args[0] === "all") args.shift();
else if (args[0] !== undefined && args[0] in suites) chosen = [args.shift()];

/** The layering rule over src/; resolves to its counts (one check). */
function runLayering() {
  const depcruiseArgs = [depcruise, "src", "--config", suites.layering, "--output-type", "err"];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, depcruiseArgs, { cwd: root, stdio: "inherit" });
    const done = (ok, how) => resolve({ passed: ok ? 1 : 0, failed: ok ? 0 : 1, skipped: 0, problems: ok ? [] : [`layering: ${how} (see above)`] });
    child.on("error", (err) => done(false, err.message));
    child.on("exit", (code, signal) => done(code === 0, signal ? `killed by ${signal}` : "dependency-cruiser found violations"));
  });
}

/** Run one suite; resolves to its counts. */
function runSuite(name) {
  if (name === "layering") return runLayering();
  const report = join(resultsDir, `${name}.json`);
  rmSync(report, { force: true }); // a crash must not be read as the last run's results
  if (name === "vm") rmSync(join(resultsDir, "cli-calls.tsv"), { force: true }); // test/vm/harness.ts appends to it
  const vitestArgs = [
    vitest,
    "run",
    "--config",
    suites[name],
    "--reporter=default",
    "--reporter=json",
    `--outputFile.json=${report}`,
    // A filter that matches nothing in one suite is not a failure of that suite.
    ...(args.length > 0 ? ["--passWithNoTests"] : []),
    ...args,
  ];
  return new Promise((resolve) => {
    const child = spawn(process.execPath, vitestArgs, { cwd: root, stdio: "inherit" });
    child.on("error", (err) => resolve(summarize(name, report, { code: null, error: err.message })));
    child.on("exit", (code, signal) => resolve(summarize(name, report, { code, signal })));
  });
}

function summarize(name, report, exit) {
  const counts = { passed: 0, failed: 0, skipped: 0, problems: [] };
  let json;
  try {
    json = JSON.parse(readFileSync(report, "utf8"));
  } catch {
    json = undefined;
  }
  if (json) {
    counts.passed = json.numPassedTests ?? 0;
    counts.failed = json.numFailedTests ?? 0;
    counts.skipped = (json.numPendingTests ?? 0) + (json.numTodoTests ?? 0);
    for (const file of json.testResults ?? []) {
      if (file.status === "failed" && (file.assertionResults ?? []).every((t) => t.status !== "failed")) {
        counts.failed += 1;
        counts.problems.push(`${name}: ${file.name} failed to run${file.message ? `: ${file.message.split("\n")[0]}` : ""}`);
      }
    }
  }
  if (exit.code !== 0 && counts.failed === 0) {
    counts.failed = 1;
    const how = exit.error ?? (exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`);
    counts.problems.push(`${name}: suite ${how}${json ? "" : " without writing a report"}`);
  }
  return counts;
}

function line({ passed, failed, skipped }) {
  return `${passed} passed, ${failed} failed${skipped > 0 ? `, ${skipped} skipped` : ""}`;
}

mkdirSync(resultsDir, { recursive: true });
const total = { passed: 0, failed: 0, skipped: 0 };
const perSuite = [];
for (const name of chosen) {
  const counts = await runSuite(name);
  perSuite.push([name, counts]);
  total.passed += counts.passed;
  total.failed += counts.failed;
  total.skipped += counts.skipped;
}
console.log("");
for (const [name, counts] of perSuite) {
  for (const problem of counts.problems) console.log(problem);
  console.log(`${name}: ${line(counts)}`);
}
console.log(line(total));
process.exitCode = total.failed > 0 ? 1 : 0;
