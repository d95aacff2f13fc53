/**
 * Measures the concurrency ceiling of the naive server design, "one pending
 * `await FsFile.read()` per client", and checks that the session server has none.
 *
 *     deno run --allow-read --allow-write=/tmp --allow-run --allow-env bench/naive_ceiling.ts
 *
 * Part 1: a child process makes K+1 FIFOs, opens each read-write (which never waits for a
 * peer), parks a read on K of them (no data will ever come), then writes a byte to the
 * last one and reads it: does that read, which has data ready, still complete? And do a
 * timer and an async `Deno.stat` still complete? Every K runs in a fresh subprocess with a
 * deadline, so a stall cannot hang the benchmark.
 *
 * Part 2: one server, one client process holding 1,000 idle sessions while one more session
 * does 100 checked round trips (tests/session_scenarios.ts), against a run with no idle ones.
 *
 * Prints a short Markdown report.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { spawn, tempDir } from "../tests/helpers.ts";
import { idleScenario } from "../tests/session_scenarios.ts";

/** How long a read with data ready may take before we call the process stalled. */
const STALL_MS = 2000;

/** What one child reports. */
interface Probe {
  k: number;
  /** ms for a 10 ms timer; null if it never fired. */
  timerMs: number | null;
  /** ms for the (K+1)-th FIFO's read of a byte already there; null if stalled. */
  readMs: number | null;
  /** ms for an async `Deno.stat`; null if stalled. */
  statMs: number | null;
}

/** Resolves with how long `promise` took, or null after `ms`. */
async function timed(promise: Promise<unknown>, ms: number): Promise<number | null> {
  const start = performance.now();
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<null>((resolve) => timer = setTimeout(() => resolve(null), ms));
  try {
    const result = await Promise.race([promise.then(() => performance.now() - start), expired]);
    return result === null ? null : Math.round(result * 100) / 100;
  } finally {
    clearTimeout(timer);
  }
}

/** The child: park K reads, then probe. Exits without cleaning up its parked threads. */
async function child(k: number, dir: string): Promise<never> {
  const paths = Array.from({ length: k + 1 }, (_, i) => `${dir}/f${i}`);
  const made = await new Deno.Command("mkfifo", { args: ["-m", "0600", "--", ...paths] })
    .output();
  if (made.code !== 0) throw new Error(new TextDecoder().decode(made.stderr));
  const files = paths.map((path) => Deno.openSync(path, { read: true, write: true }));
  for (const path of paths) Deno.removeSync(path); // the open ends keep them alive
  const parked = files.slice(0, k);
  const probe = files[k];
  for (const file of parked) file.read(new Uint8Array(1)).catch(() => {});
  await new Promise((resolve) => setTimeout(resolve, 100)); // let every read park

  const timerMs = await timed(new Promise((resolve) => setTimeout(resolve, 10)), STALL_MS);
  probe.writeSync(new Uint8Array([0x2a])); // synchronous: runs on this thread
  const readMs = await timed(probe.read(new Uint8Array(1)), STALL_MS);
  const statMs = await timed(Deno.stat(dir), STALL_MS);
  const result: Probe = { k, timerMs, readMs, statMs };
  console.log(JSON.stringify(result));
  Deno.exit(0); // the parked threads never return: do not wait for them
}

/** Runs one child for `k` parked reads in a fresh process and private directory. */
async function probeK(k: number): Promise<Probe> {
  using tmp = tempDir("naive-ceiling-");
  await using proc = spawn(Deno.execPath(), [
    "run",
    `--allow-read=${tmp.path}`,
    `--allow-write=${tmp.path}`,
    "--allow-run=mkfifo",
    new URL(import.meta.url).pathname,
    "--child",
    String(k),
    "--dir",
    tmp.path,
  ], { deadline: STALL_MS * 3 + 5000 });
  try {
    const { code, stdout, stderr } = await proc.done;
    if (code !== 0) throw new Error(`Child for K=${k} exited with ${code}: ${stderr}`);
    return JSON.parse(stdout.trim().split("\n").at(-1)!);
  } catch (error) {
    if (!String(error).includes("deadline")) throw error;
    return { k, timerMs: null, readMs: null, statMs: null }; // hung as a whole: killed
  }
}

const works = (p: Probe) => p.readMs !== null;
const cell = (ms: number | null) => ms === null ? `**stalled** (> ${STALL_MS} ms)` : `${ms} ms`;

async function naiveCeiling(): Promise<string[]> {
  const probes = new Map<number, Probe>();
  const probe = async (k: number) => {
    if (!probes.has(k)) probes.set(k, await probeK(k));
    return probes.get(k)!;
  };
  for (const k of [8, 16, 24, 28, 30, 31, 32, 33, 40, 64]) await probe(k);
  // Narrow down between the largest working K and the smallest stalling one.
  const largestOk = () => Math.max(0, ...[...probes.values()].filter(works).map((p) => p.k));
  const smallestStall = () =>
    Math.min(Infinity, ...[...probes.values()].filter((p) => !works(p)).map((p) => p.k));
  while (smallestStall() - largestOk() > 1 && Number.isFinite(smallestStall())) {
    await probe(Math.floor((largestOk() + smallestStall()) / 2));
  }
  const lines = [
    `## Naive design: one pending \`await FsFile.read()\` per client`,
    "",
    `K FIFO reads parked (no data), then a (K+1)-th FIFO read with a byte ready, a 10 ms timer`,
    `and an async \`Deno.stat\`, each given ${STALL_MS} ms (Deno ${Deno.version.deno}, ` +
    `${navigator.hardwareConcurrency} CPUs). Each K in a fresh process.`,
    "",
    "| K parked reads | 10 ms timer | (K+1)-th read, data ready | async Deno.stat |",
    "| ---: | ---: | ---: | ---: |",
  ];
  for (const p of [...probes.values()].sort((a, b) => a.k - b.k)) {
    lines.push(`| ${p.k} | ${cell(p.timerMs)} | ${cell(p.readMs)} | ${cell(p.statMs)} |`);
  }
  lines.push(
    "",
    `Largest K that works: **${largestOk()}**; smallest K that stalls: **${
      Number.isFinite(smallestStall())
        ? smallestStall()
        : `none up to ${Math.max(...probes.keys())}`
    }**.`,
    "",
  );
  return lines;
}

async function sessionServer(): Promise<string[]> {
  const rows: string[] = [];
  for (const idle of [0, 1000]) {
    const s = await idleScenario({ idle, rounds: 100, checkIdle: true, deadline: 600_000 });
    const rt = s.roundTripMs as { p50: number; p90: number; max: number };
    rows.push(
      `| ${idle} | ${s.connectMs} ms | ${s.rounds} ok | ${s.idleChecked} ok | ${rt.p50} ms | ` +
        `${rt.p90} ms | ${rt.max} ms |`,
    );
  }
  return [
    "## Session server: idle sessions + 1 active",
    "",
    "One server; one client process holds the idle sessions (connected 8 at a time), one more",
    "session does 100 checked round trips (log-uniform sizes up to 256 KiB), then every idle",
    "session does one round trip.",
    "",
    "| idle sessions | connect all idle | active round trips | idle round trips | p50 | p90 | max |",
    "| ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ...rows,
    "",
  ];
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: { child: { type: "string" }, dir: { type: "string" } },
  });
  if (values.child !== undefined) await child(Number(values.child), values.dir!);
  const report = [...await naiveCeiling(), ...await sessionServer()];
  console.log(report.join("\n"));
}
