/**
 * `deno task bench`: our echo server and clients against baselines measured in the same run.
 *
 *     deno run --allow-read --allow-write=/tmp,./bench/results --allow-run --allow-env \
 *       --allow-sys bench/bench.ts [--reps N] [--quick] [--only A,B,C,D,E,F] [--pin] [--save]
 *
 * Workloads (full size; `--quick` shrinks every count for a smoke run of one repetition):
 *
 * - A ping-pong: 100-byte messages, one outstanding, 20,000 round trips (round trips/s).
 * - B pipelined: 200,000 64-byte lines, the client writing while it reads (messages/s).
 * - C bulk: 256 MiB in 64 KiB writes, `raw` and `length` framing (MiB/s).
 * - D sessions: 1, 16 and 256 concurrent session clients doing ping-pong against our
 *   server from one driver process (`bench/sessions_load.ts`), and 256 over 16 processes;
 *   aggregate messages/s from the start barrier to the last client done.
 * - E filter: `client.ts --stdin` (session, and `--shared`) from a file of 1,000,000 lines
 *   of 25 B (bytes that are not UTF-8 among them) to a file, checked byte for byte; lines/s
 *   over the whole client process, and its peak RSS. Baseline: `cat` through the C pair.
 * - F idle: our server with nobody connected (its wake-ups per second, all threads), and
 *   with 1,000 silent sessions held by one Python process (`bench/idle_sessions.py`; its
 *   CPU as % of one core).
 *
 * Implementations: the C echo pair (`bench/c_echo.c`, the kernel limit and the 1.00 of
 * every ratio), the seed article's approach (`bench/seed_echo.py`), our server
 * (`server.ts` as users run it: the card's permissions, default engine, cwd a temporary
 * directory) driven by our blocking client (`bench/load.ts`), and for A our `FifoConn`
 * client on the plain pair and in a session (the library's default). Without `cc` the baseline is `cat` as the echo
 * server driven by our client; without `python3` the seed row is left out (both are said
 * in the output).
 *
 * Method: every figure is the median of `--reps` repetitions (default 5) run interleaved
 * (repetition 1 of every implementation, then repetition 2, ...), and every ratio is the
 * median of the per-repetition ratios to the baseline measured in that same repetition, so
 * that drift on a shared machine cancels out. Every cell gets fresh FIFOs (our server makes
 * its own) and a fresh server, so its peak RSS (VmHWM, polled from /proc) is that
 * workload's; our server's idle RSS is VmRSS once it is parked waiting for a client. Every
 * subprocess has a deadline and is killed (SIGKILL) past it: its cell reads "failed".
 *
 * `--pin` runs every process on CPU 0 (taskset): a diagnostic, it shows how much of the
 * ping-pong gap is the cost of waking a process on the other CPU.
 *
 * Output: one Markdown table on stdout, also written with everything else (each
 * repetition's value, machine, targets) to bench/results/last-run.{md,json} (ignored by
 * git); `--save` writes the committed bench/results/latest.{md,json} instead.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { BENCH_DIR, type Env, FULL, QUICK, runCell, workloads } from "./cells.ts";
import { exists, live, pinToCpu0, run } from "./procs.ts";
import { label, report, type Row } from "./report.ts";

const USAGE = `Usage: deno task bench [--reps N] [--quick] [--only A,B,C,D,E,F] [--pin] [--save]

  --reps N     repetitions of every cell, interleaved (default 5; 1 with --quick)
  --quick      small counts and one repetition: a smoke run
  --only LIST  workloads to run, of A (ping-pong), B (pipelined), C (bulk), D (sessions),
               E (client.ts --stdin), F (idle cost)
  --pin        run every process on CPU 0 (diagnostic: no cross-CPU wake-ups)
  --save       write bench/results/latest.* (committed), not bench/results/last-run.*`;

const GROUPS = ["A", "B", "C", "D", "E", "F"];
const encoder = new TextEncoder();
const progress = (text: string) =>
  Deno.stderr.writeSync(encoder.encode(`\r${text}`.padEnd(100) + (text ? "" : "\r")));

function parseOptions(args: string[]) {
  const { values } = parseArgs({
    args,
    options: {
      reps: { type: "string" },
      quick: { type: "boolean" },
      only: { type: "string" },
      pin: { type: "boolean" },
      save: { type: "boolean" },
      help: { type: "boolean", short: "h" },
    },
  });
  const quick = values.quick ?? false;
  const reps = values.reps === undefined ? (quick ? 1 : 5) : Number(values.reps);
  if (!Number.isSafeInteger(reps) || reps < 1 || reps > 100) {
    throw new TypeError("--reps must be a whole number from 1 to 100");
  }
  const only = new Set(
    (values.only ?? GROUPS.join(",")).toUpperCase().split(",").map((s) => s.trim()),
  );
  const wrong = [...only].find((group) => !GROUPS.includes(group));
  if (wrong) throw new TypeError(`--only takes ${GROUPS.join(", ")}, not "${wrong}"`);
  return { ...values, quick, reps, only };
}

/** The tools the baselines need: the C pair built into `work`, Python. */
async function tools(work: string, notes: string[]) {
  const ccVersion = await exists("cc", ["--version"]);
  let cEcho: string | undefined = ccVersion ? `${work}/c_echo` : undefined;
  if (!cEcho) notes.push("cc is missing: the 1.00 baseline is `cat` driven by our lib client.");
  try {
    if (cEcho) await run("cc", ["-O2", "-pthread", "-o", cEcho, `${BENCH_DIR}c_echo.c`], 120);
  } catch (error) {
    notes.push(`cc failed (${(error as Error).message}): the baseline is \`cat\` instead.`);
    cEcho = undefined;
  }
  const python = await exists("python3", ["--version"]);
  if (!python) notes.push("python3 is missing: the seed row and F with sessions are left out.");
  return { cEcho, cc: ccVersion?.split("\n")[0], python: python?.replace(/^Python /, "") };
}

/** Runs every cell `reps` times, interleaved: repetition 1 of every row, then 2, ... */
async function measure(env: Env, rows: Row[], reps: number): Promise<void> {
  progress("warming up...");
  const warm = { ...env, sizes: { ...env.sizes, pingCount: 200 } };
  await runCell(warm, rows[0].workload, rows[0].impl === "c" ? "ours" : rows[0].impl);
  for (let rep = 0, done = 0; rep < reps; rep++) {
    for (const row of rows) {
      progress(`[${++done}/${rows.length * reps}] ${row.workload.id} ${row.label} rep ${rep + 1}`);
      row.cells.push(await runCell(env, row.workload, row.impl));
    }
  }
  progress("");
}

async function main(args: string[]): Promise<number> {
  let options;
  try {
    options = parseOptions(args);
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (options.help) return console.log(USAGE), 0;
  const notes: string[] = [];
  if (options.pin && await exists("taskset", ["-V"])) pinToCpu0();
  if (options.pin) notes.push("--pin: every process ran on CPU 0 (taskset -c 0), if present.");
  const work = await Deno.makeTempDir({ dir: "/tmp", prefix: "fifo-bench-" });
  const cleanup = () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    Deno.removeSync(work, { recursive: true });
  };
  const interrupted = () => {
    cleanup();
    Deno.stderr.writeSync(encoder.encode("\ninterrupted: processes killed, FIFOs removed\n"));
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  try {
    progress("building the C echo pair...");
    const found = await tools(work, notes);
    const sizes = options.quick ? QUICK : FULL;
    const env: Env = {
      work,
      cEcho: found.cEcho,
      python: !!found.python,
      sizes,
      deno: Deno.execPath(),
    };
    const rows: Row[] = workloads(sizes, options.only, env.python).flatMap((w) =>
      w.impls.map((impl) => ({ workload: w, impl, label: label(impl, env, w), cells: [] }))
    );
    const started = performance.now();
    await measure(env, rows, options.reps);
    const elapsedSeconds = (performance.now() - started) / 1000;
    const { markdown, json } = await report(rows, {
      ...options,
      only: [...options.only],
      pinned: !!options.pin,
      sizes,
      notes,
      elapsedSeconds,
      ...found,
    });
    console.log(markdown);
    const base = `${BENCH_DIR}results/${options.save ? "latest" : "last-run"}`;
    await Deno.writeTextFile(`${base}.md.tmp`, markdown);
    await Deno.writeTextFile(`${base}.json.tmp`, JSON.stringify(json, null, 2) + "\n");
    for (const ext of [".md", ".json"]) await Deno.rename(`${base}${ext}.tmp`, `${base}${ext}`);
    console.error(`wrote ${base}.md and ${base}.json`);
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupted);
    Deno.removeSignalListener("SIGTERM", interrupted);
    cleanup();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
