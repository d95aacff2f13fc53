/**
 * Runs `deno test` on the given test files split into `--jobs` groups, each group in a
 * process of its own and its files one after another: the suite mostly waits on
 * subprocesses and kernel states, so groups overlap well on two cores. Separate processes,
 * not `deno test --parallel`: that runs modules in one process, where they would share
 * Deno's bounded pool of blocking threads (FIFO opens park there) and where a test that
 * reads its own threads' states in /proc would see the other modules' threads.
 *
 *     deno run --allow-read=. --allow-write=.test-timings.json --allow-run tools/run_tests.ts [--jobs 3] -- TEST_ARGS... -- PATHS...
 *
 * Each group's output is printed whole when it ends; the last line sums them in Deno's
 * own form (`ok | 180 passed | 0 failed | 2 ignored (41s)`). Exits 1 if any group failed.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { spawn } from "./spawn.ts";

/** Test modules under `paths` (files or folders), as `deno test` would find them. */
function testFiles(paths: string[]): string[] {
  const found: string[] = [];
  const walk = (path: string) => {
    if (Deno.statSync(path).isFile) return void found.push(path);
    for (const entry of Deno.readDirSync(path)) {
      const child = `${path.replace(/\/$/, "")}/${entry.name}`;
      if (entry.isDirectory) walk(child);
      else if (/(^|[_.])test\.ts$/.test(entry.name) || path.startsWith("lib")) {
        found.push(child);
      }
    }
  };
  for (const path of paths) walk(path);
  return found.sort();
}

/** Where each run leaves how long each file took, to balance the next run's groups. */
const TIMINGS = ".test-timings.json";

/** Seconds per test file in `output` (Deno's "running N tests from ./FILE" and "(1.2s)"). */
function timingsIn(output: string): Record<string, number> {
  const seconds: Record<string, number> = {};
  let file = "";
  const units: Record<string, number> = { s: 1, ms: 1e-3, "µs": 1e-6 };
  for (const line of output.split("\n")) {
    const running = line.match(/^running \d+ tests? from \.\/(.+)$/);
    if (running) file = running[1].replace(/\$\d+-\d+\.ts$|#\d+-\d+\.ts$/, "");
    const took = line.match(/ \.\.\. \w+ \((\d+(?:\.\d+)?)(s|ms|µs)\)$/);
    if (file && took) seconds[file] = (seconds[file] ?? 0) + Number(took[1]) * units[took[2]];
  }
  return seconds;
}

/** The seconds each file took when last run (none on a fresh clone). */
function known(): Record<string, number> {
  try {
    return JSON.parse(Deno.readTextFileSync(TIMINGS));
  } catch {
    return {};
  }
}

/**
 * Splits `files` into `jobs` groups of about equal time, longest first: seconds from the
 * last run where known, else a guess from the file's size.
 */
function groups(files: string[], jobs: number): string[][] {
  const seconds = known();
  const weighed = files.map((file) => ({
    file,
    weight: seconds[file] ?? (file.startsWith("lib/") ? 0.1 : Deno.statSync(file).size / 2000),
  })).sort((a, b) => b.weight - a.weight);
  const bins = Array.from({ length: jobs }, () => ({ weight: 0, files: [] as string[] }));
  for (const { file, weight } of weighed) {
    const bin = bins.reduce((a, b) => (b.weight < a.weight ? b : a));
    bin.weight += weight;
    bin.files.push(file);
  }
  return bins.map((bin) => bin.files.sort()).filter((list) => list.length);
}

async function main(args: string[]): Promise<number> {
  const split = args.indexOf("--");
  const rest = args.slice(split + 1);
  const second = rest.indexOf("--");
  const { values } = parseArgs({
    args: args.slice(0, split),
    options: { jobs: { type: "string", default: "3" }, ignore: { type: "string" } },
  });
  const ignored = new Set((values.ignore ?? "").split(",").filter(Boolean));
  const files = testFiles(rest.slice(second + 1)).filter((file) => !ignored.has(file));
  const started = performance.now();
  const results = await Promise.all(
    groups(files, Number(values.jobs)).map(async (group) => {
      const proc = spawn(Deno.execPath(), ["test", ...rest.slice(0, second), ...group], {
        deadline: 10 * 60_000,
        env: { NO_COLOR: "1" }, // a summary line to read
      });
      const result = await proc.done;
      console.log(result.stdout + result.stderr);
      return result;
    }),
  );
  const total = { passed: 0, failed: 0, ignored: 0 };
  for (const { stdout } of results) {
    for (const key of ["passed", "failed", "ignored"] as const) {
      total[key] += Number(stdout.match(new RegExp(`\\| (\\d+) ${key}`))?.[1] ?? 0);
    }
  }
  const ok = results.every((result) => result.code === 0);
  const timings = Object.assign(known(), ...results.map((result) => timingsIn(result.stdout)));
  try {
    Deno.writeTextFileSync(TIMINGS, JSON.stringify(timings, null, 1) + "\n");
  } catch { /* a read-only checkout balances by size */ }
  const seconds = Math.round((performance.now() - started) / 1000);
  console.log(
    `${ok ? "ok" : "FAILED"} | ${total.passed} passed | ${total.failed} failed` +
      `${
        total.ignored ? ` | ${total.ignored} ignored` : ""
      } (${seconds}s, ${results.length} processes)`,
  );
  return ok ? 0 : 1;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
