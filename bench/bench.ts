/**
 * `deno task bench`: our echo server and clients against baselines measured in the same run.
 *
 *     deno run --allow-read --allow-write=/tmp,./bench --allow-run --allow-env --allow-sys \
 *       bench/bench.ts [--reps N] [--quick] [--only A,B,C,D] [--pin]
 *
 * Workloads (full size; `--quick` shrinks every count for a smoke run of one repetition):
 *
 * - A ping-pong: 100-byte messages, one outstanding, 20,000 round trips (round trips/s).
 * - B pipelined: 200,000 64-byte lines, the client writing while it reads (messages/s).
 * - C bulk: 256 MiB in 64 KiB writes, `raw` and `length` framing (MiB/s).
 * - D sessions: 1, 16 and 256 concurrent session clients doing ping-pong against our
 *   server, at most 16 per driver process (`bench/sessions_load.ts`), aggregate messages/s
 *   from the start barrier to the last client done.
 *
 * Implementations: the C echo pair (`bench/c_echo.c`, the kernel limit and the 1.00 of
 * every ratio), the seed article's approach (`bench/seed_echo.py`), our server
 * (`server.ts`, worker and async engines) driven by our blocking client (`bench/load.ts`),
 * and for A our async `FifoConn` client. Without `cc` the baseline is `cat` as the echo
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
 * Output: one Markdown table on stdout, also written to bench/results/latest.md, and
 * everything (each repetition's value, machine, targets) to bench/results/latest.json.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { fileURLToPath } from "node:url";

// ---------------------------------------------------------------------------------------
// Configuration

const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
const ROOT = fileURLToPath(new URL("..", import.meta.url));
const RESULTS_DIR = `${BENCH_DIR}results`;
const MiB = 1024 * 1024;
/** Session connections per driver process: Deno stalls near 32 parked FIFO reads. */
const PER_PROCESS = 16;

interface Sizes {
  pingCount: number;
  pingSize: number;
  pipeCount: number;
  pipeSize: number;
  bulkTotal: number;
  bulkChunk: number;
  /** Messages per D cell, shared out over its clients. */
  sessionTotal: number;
  sessionClients: number[];
  sessionSize: number;
}

const FULL: Sizes = {
  pingCount: 20_000,
  pingSize: 100,
  pipeCount: 200_000,
  pipeSize: 64,
  bulkTotal: 256 * MiB,
  bulkChunk: 64 * 1024,
  sessionTotal: 20_480,
  sessionClients: [1, 16, 256],
  sessionSize: 64,
};

const QUICK: Sizes = {
  ...FULL,
  pingCount: 2_000,
  pipeCount: 20_000,
  bulkTotal: 16 * MiB,
  sessionTotal: 2_048,
};

/** The targets, on the ratios of "ours: worker engine + lib client" and on our server's RSS. */
const TARGETS = {
  A: 0.85,
  B: 2.0,
  C: 0.85,
  D: 0.8,
  idleMiB: 40,
  loadMiB: 64,
};

type WorkloadId = "A" | "B" | "C-raw" | "C-length" | "D-1" | "D-16" | "D-256" | `D-${number}`;
type ImplId = "c" | "py" | "worker" | "async" | "conn" | "sessions";

interface Workload {
  id: WorkloadId;
  group: "A" | "B" | "C" | "D";
  title: string;
  unit: string;
  impls: ImplId[];
  /** The implementation ratios are taken against. */
  baseline: ImplId | WorkloadId;
  /** Seconds any one process of a cell may take. */
  deadline: number;
}

// ---------------------------------------------------------------------------------------
// Subprocesses with deadlines

const live = new Set<Deno.ChildProcess>();
const encoder = new TextEncoder();
let pinned = false;

function wrap(command: string, args: string[]): [string, string[]] {
  return pinned ? ["taskset", ["-c", "0", command, ...args]] : [command, args];
}

interface Spawned {
  child: Deno.ChildProcess;
  pid: number;
  /** Settles when the process has exited (killed or not); never rejects. */
  exited: Promise<Deno.CommandStatus | undefined>;
  stdout(): string;
  stderr(): string;
  kill(signal?: Deno.Signal): void;
}

/** Collects a stream into text in the background. */
function collect(stream: ReadableStream<Uint8Array> | null, onChunk?: (text: string) => void) {
  let text = "";
  const done = (async () => {
    if (!stream) return;
    const textDecoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        const piece = textDecoder.decode(chunk, { stream: true });
        text += piece;
        if (text.length > 1 << 20) text = text.slice(-(1 << 19));
        onChunk?.(piece);
      }
    } catch { /* killed */ }
  })();
  return { text: () => text, done };
}

function spawn(
  command: string,
  args: string[],
  options: {
    stdin?: "piped" | "null";
    stdout?: "piped" | "null";
    onStdout?: (text: string) => void;
  } = {},
): Spawned {
  const [cmd, argv] = wrap(command, args);
  const child = new Deno.Command(cmd, {
    args: argv,
    stdin: options.stdin ?? "null",
    stdout: options.stdout ?? "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  live.add(child);
  const out = collect(options.stdout === "null" ? null : child.stdout, options.onStdout);
  const err = collect(child.stderr);
  const exited = child.status.then(
    async (status) => {
      await Promise.all([out.done, err.done]);
      return status;
    },
    () => undefined,
  ).finally(() => live.delete(child));
  return {
    child,
    pid: child.pid,
    exited,
    stdout: out.text,
    stderr: err.text,
    kill(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
    },
  };
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for `proc` to exit for at most `ms`; kills it with SIGKILL past that. */
async function finish(proc: Spawned, ms: number): Promise<Deno.CommandStatus | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
  const result = await Promise.race([proc.exited, timedOut]);
  clearTimeout(timer);
  if (result === "timeout") {
    proc.kill("SIGKILL");
    await proc.exited;
    return undefined;
  }
  return result;
}

/** Stops a server: SIGTERM, then SIGKILL after `ms`. */
async function stop(proc: Spawned, ms = 5000): Promise<void> {
  proc.kill("SIGTERM");
  await finish(proc, ms);
}

/** Runs a command to its end within `seconds`; throws with its stderr when it fails. */
async function run(command: string, args: string[], seconds: number): Promise<string> {
  const proc = spawn(command, args);
  const status = await finish(proc, seconds * 1000);
  if (!status) throw new Error(`${command} took longer than ${seconds} s: killed`);
  if (!status.success) {
    throw new Error(`${command} exited with ${status.code}: ${lastLine(proc.stderr())}`);
  }
  return proc.stdout();
}

/**
 * What a process's stderr says went wrong: from its first `error:` line (else its last
 * line) on, stack frames left out, at most 300 characters.
 */
function lastLine(text: string): string {
  const lines = text.trim().split("\n").map((l) => l.trim())
    .filter((l) => l && !/^at /.test(l) && !/^\^+$/.test(l));
  const first = lines.findIndex((l) => /^error\b/i.test(l));
  const picked = first < 0 ? lines.slice(-1) : lines.slice(first);
  return (picked.join(" / ") || "no output").replace(/^error: /, "").slice(0, 300);
}

function parseResult(text: string): { ops: number; bytes: number; ns: number } {
  const line = text.trim().split("\n").at(-1) ?? "";
  const result = JSON.parse(line);
  if (!(result.ops > 0 && result.ns > 0)) throw new Error(`unexpected output: ${line}`);
  return result;
}

async function exists(command: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(command, args, 10)).trim() || "present";
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// /proc and memory

/**
 * Deno 2 reads /proc only with `--allow-all` (`--allow-read` alone is refused with
 * NotCapable). Without it, /proc is read through a `sh` subprocess: slower, so sampled less
 * often.
 */
let procDirect = true;

/** Reads /proc files (or, with a `*`, what a shell glob names), `undefined` on failure. */
async function readProc(paths: string[]): Promise<string[] | undefined> {
  if (procDirect && !paths.some((p) => p.includes("*"))) {
    try {
      return paths.map((path) => Deno.readTextFileSync(path));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) return undefined;
      procDirect = false;
    }
  }
  try {
    // Our own paths (digits and fixed names only), each file followed by a separator byte.
    const script = paths.map((p) => `for f in ${p}; do cat "$f"; printf '\\036'; done`);
    const { stdout } = await new Deno.Command("sh", {
      args: ["-c", `${script.join("; ")} 2>/dev/null`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const parts = new TextDecoder().decode(stdout).split("\x1e");
    parts.pop();
    return parts.length ? parts : undefined;
  } catch {
    return undefined;
  }
}

interface Memory {
  rssKiB: number;
  hwmKiB: number;
}

async function memoryOf(pid: number): Promise<Memory | undefined> {
  const [status] = await readProc([`/proc/${pid}/status`]) ?? [""];
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1]);
  const rssKiB = field("VmRSS");
  const hwmKiB = field("VmHWM");
  return Number.isFinite(rssKiB) && Number.isFinite(hwmKiB) ? { rssKiB, hwmKiB } : undefined;
}

/** Polls a process's peak RSS (VmHWM) while it runs; `stop()` returns the largest seen. */
function watchMemory(pid: number) {
  let peak = 0;
  let busy: Promise<void> | undefined;
  const sample = () =>
    busy ??= memoryOf(pid).then((memory) => {
      if (memory) peak = Math.max(peak, memory.hwmKiB, memory.rssKiB);
    }).finally(() => busy = undefined);
  sample();
  const timer = setInterval(sample, procDirect ? 25 : 100);
  let stopped: Promise<number | undefined> | undefined;
  return {
    /** Takes a last sample (the process must still be running for it to count). */
    stop(): Promise<number | undefined> {
      stopped ??= (async () => {
        clearInterval(timer);
        await busy;
        await sample();
        return peak || undefined;
      })();
      return stopped;
    },
  };
}

/** Whether some thread of `pid` is parked opening a FIFO (the server waits for a client). */
async function parkedInOpen(pid: number): Promise<boolean | undefined> {
  let wchans: string[] | undefined;
  try {
    const tasks = [...Deno.readDirSync(`/proc/${pid}/task`)].map((t) => t.name);
    wchans = await readProc(tasks.map((t) => `/proc/${pid}/task/${t}/wchan`));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) return undefined;
    procDirect = false;
    wchans = await readProc([`/proc/${pid}/task/*/wchan`]);
  }
  const names = (wchans ?? []).map((w) => w.trim());
  if (names.includes("wait_for_partner")) return true;
  return names.some((w) => w && w !== "0") ? false : undefined;
}

// ---------------------------------------------------------------------------------------
// Cells

interface Env {
  work: string;
  cEcho: string | undefined;
  python: boolean;
  sizes: Sizes;
  deno: string;
}

interface CellResult {
  value?: number;
  peakKiB?: number;
  idleKiB?: number;
  error?: string;
}

let cellCounter = 0;

async function freshDir(env: Env): Promise<string> {
  return await Deno.makeTempDir({ dir: env.work, prefix: `cell${++cellCounter}-` });
}

async function mkfifos(dir: string): Promise<[string, string]> {
  const paths: [string, string] = [`${dir}/in`, `${dir}/out`];
  await run("mkfifo", ["-m", "600", ...paths], 10);
  return paths;
}

/** The client's argv (after the program) for a workload, as every client takes it. */
function clientArgs(w: Workload, sizes: Sizes, input: string, output: string): string[] {
  switch (w.group) {
    case "A":
      return ["pingpong", input, output, `${sizes.pingCount}`, `${sizes.pingSize}`];
    case "B":
      return ["pipelined", input, output, `${sizes.pipeCount}`, `${sizes.pipeSize}`];
    default:
      return [
        "bulk",
        input,
        output,
        `${sizes.bulkTotal}`,
        `${sizes.bulkChunk}`,
        w.id === "C-length" ? "length" : "raw",
      ];
  }
}

function framingOf(w: Workload): string {
  return w.id === "C-length" ? "length" : w.id === "C-raw" ? "raw" : "lines";
}

/** A figure from a client's JSON line, in the workload's unit. */
function figure(w: Workload, result: { ops: number; bytes: number; ns: number }): number {
  const seconds = result.ns / 1e9;
  return w.group === "C" ? result.bytes / MiB / seconds : result.ops / seconds;
}

function loadTs(env: Env, dir: string, args: string[]): [string, string[]] {
  return [env.deno, [
    "run",
    "-q",
    "--allow-read",
    `--allow-write=${dir}`,
    `${BENCH_DIR}load.ts`,
    ...args,
  ]];
}

/** A baseline cell: a fresh FIFO pair, a C/Python/cat server that exits at EOF, a client. */
async function baselineCell(env: Env, w: Workload, impl: "c" | "py"): Promise<CellResult> {
  const dir = await freshDir(env);
  const [input, output] = await mkfifos(dir);
  const args = clientArgs(w, env.sizes, input, output);
  let server: Spawned;
  let client: [string, string[]];
  if (impl === "py") {
    server = spawn("python3", [`${BENCH_DIR}seed_echo.py`, "server", input, output], {
      stdout: "null",
    });
    client = ["python3", [`${BENCH_DIR}seed_echo.py`, "client", ...args]];
  } else if (env.cEcho) {
    server = spawn(env.cEcho, ["server", input, output]);
    client = [env.cEcho, ["client", ...args]];
  } else {
    // Input first, then output, as every client opens them: `cat IN > OUT` would open OUT
    // first and deadlock against a client waiting to open IN.
    server = spawn("sh", ["-c", 'exec <"$1" >"$2"; exec cat', "sh", input, output]);
    client = loadTs(env, dir, args);
  }
  // Sampling starts once the server runs its own program (not the launcher's image), and
  // it is parked in open() until the client arrives: a fast cell cannot slip between samples.
  for (const deadline = Date.now() + 2000; Date.now() < deadline;) {
    const [status] = await readProc([`/proc/${server.pid}/status`]) ?? [""];
    const name = status.match(/^Name:\s*(\S+)/m)?.[1];
    if (name && name !== "deno" && name !== "taskset") break;
    await sleep(2);
  }
  const memory = watchMemory(server.pid);
  try {
    const proc = spawn(...client);
    const status = await finish(proc, w.deadline * 1000);
    if (!status) return { error: `client killed after ${w.deadline} s` };
    if (!status.success) return { error: `client: ${lastLine(proc.stderr())}` };
    const serverStatus = await finish(server, 10_000);
    const value = figure(w, parseResult(proc.stdout()));
    if (!serverStatus?.success) {
      return { error: `server: ${lastLine(server.stderr()) || "did not exit at EOF"}` };
    }
    return { value, peakKiB: await memory.stop() };
  } finally {
    await memory.stop();
    server.kill("SIGKILL");
    await server.exited;
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Starts our server in `dir` and waits until it is parked waiting for a client. */
async function startOurServer(
  env: Env,
  dir: string,
  engine: "worker" | "async",
  framing: string,
): Promise<{ server: Spawned; idleKiB?: number }> {
  const server = spawn(env.deno, [
    "run",
    "-q",
    `--allow-read=${dir},${ROOT}lib`,
    `--allow-write=${dir}`,
    "--allow-run=mkfifo",
    `${ROOT}server.ts`,
    "--dir",
    dir,
    "--name",
    "bench",
    "--quiet",
    "--engine",
    engine,
    "--framing",
    framing,
  ]);
  let exited = false;
  server.exited.then(() => exited = true);
  const fifos = ["in", "out", "ctl"].map((ext) => `${dir}/bench.${ext}`);
  const deadline = Date.now() + 15_000;
  let parked: boolean | undefined = false;
  for (;;) {
    if (exited) throw new Error(`server exited at start: ${lastLine(server.stderr())}`);
    if (Date.now() > deadline) {
      await stop(server, 1000);
      throw new Error("server not ready after 15 s");
    }
    const made = fifos.every((path) => {
      try {
        return Deno.lstatSync(path).isFifo;
      } catch {
        return false;
      }
    });
    if (made) {
      parked = await parkedInOpen(server.pid);
      if (parked !== false) break;
    }
    await sleep(5);
  }
  // Without /proc/PID/task/*/wchan to tell, give the engine time to park.
  await sleep(parked === undefined ? 300 : 50);
  return { server, idleKiB: (await memoryOf(server.pid))?.rssKiB };
}

/** A cell against our server: a fresh server in a fresh directory, then one client. */
async function ourCell(env: Env, w: Workload, impl: "worker" | "async" | "conn") {
  const dir = await freshDir(env);
  let started: { server: Spawned; idleKiB?: number } | undefined;
  let memory: ReturnType<typeof watchMemory> | undefined;
  try {
    started = await startOurServer(env, dir, impl === "async" ? "async" : "worker", framingOf(w));
    memory = watchMemory(started.server.pid);
    let args = clientArgs(w, env.sizes, `${dir}/bench.in`, `${dir}/bench.out`);
    if (impl === "conn") args = ["conn", ...args.slice(1)];
    const proc = spawn(...loadTs(env, dir, args));
    const status = await finish(proc, w.deadline * 1000);
    const peakKiB = await memory.stop();
    if (!status) return { error: `client killed after ${w.deadline} s`, idleKiB: started.idleKiB };
    if (!status.success) {
      return { error: `client: ${lastLine(proc.stderr())}`, idleKiB: started.idleKiB };
    }
    return { value: figure(w, parseResult(proc.stdout())), peakKiB, idleKiB: started.idleKiB };
  } finally {
    await memory?.stop();
    if (started) await stop(started.server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Workload D: K session clients over ceil(K / 16) driver processes, one start barrier. */
async function sessionsCell(env: Env, w: Workload, clients: number): Promise<CellResult> {
  const dir = await freshDir(env);
  const drivers: Spawned[] = [];
  let started: { server: Spawned; idleKiB?: number } | undefined;
  let memory: ReturnType<typeof watchMemory> | undefined;
  try {
    started = await startOurServer(env, dir, "worker", "lines");
    memory = watchMemory(started.server.pid);
    const processes = Math.ceil(clients / PER_PROCESS);
    const perClient = Math.max(1, Math.ceil(env.sizes.sessionTotal / clients));
    const ready: Promise<void>[] = [];
    for (let p = 0; p < processes; p++) {
      const conns = Math.floor(clients / processes) + (p < clients % processes ? 1 : 0);
      const { promise, resolve } = Promise.withResolvers<void>();
      ready.push(promise);
      let seen = "";
      drivers.push(spawn(env.deno, [
        "run",
        "-q",
        `--allow-read=${dir}`,
        `--allow-write=${dir}`,
        "--allow-run=mkfifo",
        `${BENCH_DIR}sessions_load.ts`,
        "--dir",
        dir,
        "--name",
        "bench",
        "--conns",
        `${conns}`,
        "--count",
        `${perClient}`,
        "--size",
        `${env.sizes.sessionSize}`,
        "--wait",
      ], {
        stdin: "piped",
        onStdout(text) {
          seen += text;
          if (seen.includes('{"ready"')) resolve();
        },
      }));
    }
    // Every driver connected (or one died, or the deadline passed), then the barrier.
    const deadline = w.deadline * 1000;
    let timer: ReturnType<typeof setTimeout> | undefined;
    const outcome = await Promise.race([
      Promise.all(ready).then(() => "ready"),
      Promise.race(drivers.map((d) => d.exited)).then(() => "exited"),
      new Promise<string>((r) => timer = setTimeout(() => r("timeout"), deadline)),
    ]);
    clearTimeout(timer);
    if (outcome !== "ready") {
      const dead = drivers.find((d) => d.stderr().trim());
      return {
        error: outcome === "timeout"
          ? `drivers not connected after ${w.deadline} s`
          : `driver: ${dead ? lastLine(dead.stderr()) : "exited before connecting"}`,
      };
    }
    await Promise.all(drivers.map(async (d) => {
      const writer = d.child.stdin.getWriter();
      await writer.write(encoder.encode("go\n"));
      await writer.close();
    }));
    const statuses = await Promise.all(drivers.map((d) => finish(d, deadline)));
    const peakKiB = await memory.stop();
    const bad = statuses.findIndex((s) => !s?.success);
    if (bad >= 0) {
      const why = statuses[bad] ? lastLine(drivers[bad].stderr()) : `killed after ${w.deadline} s`;
      return { error: `driver ${bad + 1}/${processes}: ${why}` };
    }
    const results = drivers.map((d) => JSON.parse(d.stdout().trim().split("\n").at(-1)!));
    const messages = results.reduce((sum, r) => sum + r.messages, 0);
    const first = Math.min(...results.map((r) => r.start));
    const last = Math.max(...results.map((r) => r.end));
    return { value: messages / ((last - first) / 1000), peakKiB, idleKiB: started.idleKiB };
  } finally {
    await memory?.stop();
    for (const d of drivers) d.kill("SIGKILL");
    await Promise.all(drivers.map((d) => d.exited));
    if (started) await stop(started.server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

async function runCell(env: Env, w: Workload, impl: ImplId): Promise<CellResult> {
  try {
    if (impl === "c" || impl === "py") return await baselineCell(env, w, impl);
    if (impl === "sessions") return await sessionsCell(env, w, Number(w.id.slice(2)));
    return await ourCell(env, w, impl);
  } catch (error) {
    return { error: (error as Error)?.message ?? String(error) };
  }
}

// ---------------------------------------------------------------------------------------
// Statistics and output

function median(values: number[]): number | undefined {
  if (!values.length) return undefined;
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

interface Row {
  workload: Workload;
  impl: ImplId;
  label: string;
  cells: CellResult[];
}

interface Target {
  name: string;
  target: string;
  value: number | undefined;
  pass: boolean | undefined;
}

function label(impl: ImplId, env: Env, w: Workload): string {
  switch (impl) {
    case "c":
      return env.cEcho ? "C echo pair (kernel limit)" : "cat echo + our lib client (no cc)";
    case "py":
      return "seed approach (Python)";
    case "worker":
      return "ours: worker engine + lib client";
    case "async":
      return "ours: async engine + lib client";
    case "conn":
      return "ours: FifoConn async client";
    case "sessions": {
      const k = Number(w.id.slice(2));
      const processes = Math.ceil(k / PER_PROCESS);
      return `ours: ${k} session client${k === 1 ? "" : "s"} (${processes} process${
        processes === 1 ? "" : "es"
      })`;
    }
  }
}

function values(row: Row): number[] {
  return row.cells.flatMap((c) => c.value === undefined ? [] : [c.value]);
}

/** The median of per-repetition ratios of `row` to `base`. */
function ratioOf(row: Row, base: Row | undefined): { ratio?: number; ratios: number[] } {
  if (!base) return { ratios: [] };
  const ratios: number[] = [];
  row.cells.forEach((cell, i) => {
    const b = base.cells[i]?.value;
    if (cell.value !== undefined && b) ratios.push(cell.value / b);
  });
  return { ratio: median(ratios), ratios };
}

const mib = (kib: number | undefined) => kib === undefined ? undefined : kib / 1024;

function formatNumber(value: number | undefined, group: string): string {
  if (value === undefined) return "failed";
  if (group === "C") return value.toLocaleString("en-US", { maximumFractionDigits: 0 });
  return Math.round(value).toLocaleString("en-US");
}

function mark(pass: boolean | undefined): string {
  return pass === undefined ? "n/a" : pass ? "✅ pass" : "❌ fail";
}

async function machineInfo() {
  const [cpuinfo, version] = await readProc(["/proc/cpuinfo", "/proc/version"]) ?? ["", ""];
  const release = version?.split(" ")[2];
  let kernel = release ? `Linux ${release}` : "";
  if (!kernel) {
    try {
      kernel = `Linux ${Deno.osRelease()}`;
    } catch {
      kernel = "unknown";
    }
  }
  return {
    cpu: cpuinfo?.match(/^model name\s*:\s*(.+)$/m)?.[1]?.trim() ?? "unknown",
    cores: navigator.hardwareConcurrency,
    kernel,
    deno: Deno.version.deno,
  };
}

/**
 * The code measured: the commit, and whether server.ts, client.ts, lib/ or bench/ differ
 * from it (FIFO_BENCH_REVISION names it where this is not a git checkout).
 */
async function revision(): Promise<string> {
  try {
    const commit = (await run("git", ["-C", ROOT, "rev-parse", "--short", "HEAD"], 10)).trim();
    const dirty = (await run("git", [
      "-C",
      ROOT,
      "status",
      "--porcelain",
      "--",
      "server.ts",
      "client.ts",
      "lib",
      "bench",
    ], 10)).trim();
    return dirty ? `${commit} + uncommitted changes` : commit;
  } catch {
    return Deno.env.get("FIFO_BENCH_REVISION") ?? "unknown (not a git checkout)";
  }
}

// ---------------------------------------------------------------------------------------
// Main

const USAGE = `Usage: deno task bench [--reps N] [--quick] [--only A,B,C,D] [--pin]

  --reps N     repetitions of every cell, interleaved (default 5; 1 with --quick)
  --quick      small counts and one repetition: a smoke run
  --only LIST  workloads to run, of A (ping-pong), B (pipelined), C (bulk), D (sessions)
  --pin        run every process on CPU 0 (diagnostic: no cross-CPU wake-ups)`;

function workloads(sizes: Sizes, only: Set<string>, python: boolean): Workload[] {
  const baselines: ImplId[] = python ? ["c", "py"] : ["c"];
  const list: Workload[] = [
    {
      id: "A",
      group: "A",
      title: `A ping-pong ${sizes.pingSize} B × ${sizes.pingCount.toLocaleString("en-US")}`,
      unit: "round trips/s",
      impls: [...baselines, "worker", "async", "conn"],
      baseline: "c",
      deadline: 60,
    },
    {
      id: "B",
      group: "B",
      title: `B pipelined ${sizes.pipeSize} B × ${sizes.pipeCount.toLocaleString("en-US")}`,
      unit: "messages/s",
      impls: [...baselines, "worker", "async"],
      baseline: "c",
      deadline: 60,
    },
    ...(["raw", "length"] as const).map((framing): Workload => ({
      id: `C-${framing}`,
      group: "C",
      title: `C bulk ${sizes.bulkTotal / MiB} MiB, ${
        sizes.bulkChunk / 1024
      } KiB writes, ${framing}`,
      unit: "MiB/s",
      impls: [...baselines, "worker", "async"],
      baseline: "c",
      deadline: 120,
    })),
    ...sizes.sessionClients.map((k): Workload => ({
      id: `D-${k}`,
      group: "D",
      title: `D sessions, ${k} client${k === 1 ? "" : "s"}, ping-pong ${sizes.sessionSize} B`,
      unit: "messages/s",
      impls: ["sessions"],
      baseline: `D-${sizes.sessionClients[0]}`,
      deadline: 120,
    })),
  ];
  return list.filter((w) => only.has(w.group));
}

async function main(args: string[]): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: {
        reps: { type: "string" },
        quick: { type: "boolean" },
        only: { type: "string" },
        pin: { type: "boolean" },
        help: { type: "boolean", short: "h" },
      },
      strict: true,
      allowPositionals: false,
    }).values;
  } catch (error) {
    console.error(`error: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  if (parsed.help) {
    console.log(USAGE);
    return 0;
  }
  const quick = parsed.quick ?? false;
  const reps = parsed.reps === undefined ? (quick ? 1 : 5) : Number(parsed.reps);
  if (!Number.isSafeInteger(reps) || reps < 1 || reps > 100) {
    console.error(`error: --reps must be a whole number from 1 to 100\n\n${USAGE}`);
    return 2;
  }
  const only = new Set((parsed.only ?? "A,B,C,D").toUpperCase().split(",").map((s) => s.trim()));
  for (const group of only) {
    if (!["A", "B", "C", "D"].includes(group)) {
      console.error(`error: --only takes A, B, C and D, not "${group}"\n\n${USAGE}`);
      return 2;
    }
  }
  const sizes = quick ? QUICK : FULL;
  const notes: string[] = [];
  if (!Deno.build.os.startsWith("linux")) notes.push("Not Linux: /proc figures are missing.");

  const work = await Deno.makeTempDir({ dir: "/tmp", prefix: "fifo-bench-" });
  const cleanup = () => {
    for (const child of live) {
      try {
        child.kill("SIGKILL");
      } catch { /* gone */ }
    }
    try {
      Deno.removeSync(work, { recursive: true });
    } catch { /* gone */ }
  };
  const interrupted = () => {
    cleanup();
    Deno.stderr.writeSync(encoder.encode("\ninterrupted: processes killed, FIFOs removed\n"));
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", interrupted);
  Deno.addSignalListener("SIGTERM", interrupted);
  try {
    if (parsed.pin) {
      if (await exists("taskset", ["-V"])) {
        pinned = true;
        notes.push("--pin: every process ran on CPU 0 (taskset -c 0).");
      } else {
        notes.push("--pin ignored: taskset is missing.");
      }
    }
    const progress = (text: string) =>
      Deno.stderr.writeSync(encoder.encode(`\r${text}`.padEnd(100) + (text ? "" : "\r")));

    progress("building the C echo pair...");
    let cEcho: string | undefined;
    const ccVersion = await exists("cc", ["--version"]);
    if (ccVersion) {
      cEcho = `${work}/c_echo`;
      try {
        await run("cc", ["-O2", "-pthread", "-o", cEcho, `${BENCH_DIR}c_echo.c`], 120);
      } catch (error) {
        notes.push(`cc failed (${(error as Error).message}): the baseline is \`cat\` instead.`);
        cEcho = undefined;
      }
    } else {
      notes.push(
        "cc is missing: the 1.00 baseline is `sh -c 'cat IN > OUT'` as the echo server, " +
          "driven by our lib client (not the C client).",
      );
    }
    const pythonVersion = await exists("python3", ["--version"]);
    if (!pythonVersion) notes.push("python3 is missing: the seed row is left out.");
    const env: Env = { work, cEcho, python: !!pythonVersion, sizes, deno: Deno.execPath() };
    const selected = workloads(sizes, only, env.python);

    // Warm-up, not measured: compiles our modules into Deno's cache, so that the first
    // measured cell of ours does not pay for it.
    progress("warming up...");
    const warm = { ...env, sizes: { ...sizes, pingCount: 200, sessionTotal: 32 } };
    const warmA: Workload = { ...selected[0], id: "A", group: "A", deadline: 60 };
    await runCell(warm, warmA, "worker");
    if (only.has("D")) await runCell(warm, { ...warmA, id: "D-1", group: "D" }, "sessions");

    const rows: Row[] = selected.flatMap((w) =>
      w.impls.map((impl) => ({ workload: w, impl, label: label(impl, env, w), cells: [] }))
    );
    const total = rows.length * reps;
    let done = 0;
    const started = performance.now();
    for (let rep = 0; rep < reps; rep++) {
      for (const row of rows) {
        done++;
        progress(`[${done}/${total}] ${row.workload.id} ${row.label} rep ${rep + 1}/${reps}`);
        row.cells.push(await runCell(env, row.workload, row.impl));
      }
    }
    progress("");
    const elapsed = (performance.now() - started) / 1000;

    // ----- figures
    const find = (w: WorkloadId | ImplId, impl?: ImplId) =>
      rows.find((r) => r.workload.id === w && (impl === undefined || r.impl === impl));
    const summary = rows.map((row) => {
      const w = row.workload;
      const base = w.group === "D" ? find(w.baseline) : find(w.id, w.baseline as ImplId);
      const { ratio, ratios } = ratioOf(row, base);
      const peaks = row.cells.flatMap((c) => c.peakKiB === undefined ? [] : [c.peakKiB]);
      return {
        row,
        median: median(values(row)),
        ratio,
        ratios,
        peakMiB: mib(median(peaks)),
        ok: values(row).length,
        errors: row.cells.flatMap((c, i) => c.error ? [`rep ${i + 1}: ${c.error}`] : []),
      };
    });
    const idle = rows.filter((r) => r.impl === "worker" || r.impl === "sessions")
      .flatMap((r) => r.cells.flatMap((c) => c.idleKiB === undefined ? [] : [c.idleKiB]));
    const idleAsync = rows.filter((r) => r.impl === "async")
      .flatMap((r) => r.cells.flatMap((c) => c.idleKiB === undefined ? [] : [c.idleKiB]));
    const idleMiB = mib(median(idle));
    const idleAsyncMiB = mib(median(idleAsync));

    // ----- targets
    const targets: Target[] = [];
    const ratioTarget = (name: string, id: WorkloadId, impl: ImplId, min: number) => {
      const s = summary.find((s) => s.row.workload.id === id && s.row.impl === impl);
      if (!s) return;
      const value = s.ratio;
      targets.push({
        name,
        target: `≥ ${min.toFixed(2)}`,
        value,
        pass: value === undefined ? false : value >= min,
      });
    };
    ratioTarget("A ping-pong, ours / C", "A", "worker", TARGETS.A);
    ratioTarget("B pipelined, ours / C", "B", "worker", TARGETS.B);
    ratioTarget("C bulk raw, ours / C", "C-raw", "worker", TARGETS.C);
    ratioTarget("C bulk length, ours / C", "C-length", "worker", TARGETS.C);
    const lastD = sizes.sessionClients.at(-1)!;
    ratioTarget(`D ${lastD} clients / 1 client`, `D-${lastD}`, "sessions", TARGETS.D);
    if (idle.length) {
      targets.push({
        name: "server idle RSS (MiB)",
        target: `≤ ${TARGETS.idleMiB}`,
        value: idleMiB,
        pass: idleMiB! <= TARGETS.idleMiB,
      });
    }
    const loaded = summary.filter((s) =>
      ["A", "B", "C"].includes(s.row.workload.group) &&
      ["worker", "async", "conn"].includes(s.row.impl) && s.peakMiB !== undefined
    );
    if (loaded.length) {
      const worst = Math.max(...loaded.map((s) => s.peakMiB!));
      targets.push({
        name: "server peak RSS under A–C (MiB, worst row)",
        target: `≤ ${TARGETS.loadMiB}`,
        value: worst,
        pass: worst <= TARGETS.loadMiB,
      });
    }
    const targetOf = (s: (typeof summary)[number]): string => {
      const w = s.row.workload;
      const names: Record<string, string> = {
        "A|worker": "A ping-pong, ours / C",
        "B|worker": "B pipelined, ours / C",
        "C-raw|worker": "C bulk raw, ours / C",
        "C-length|worker": "C bulk length, ours / C",
        [`D-${lastD}|sessions`]: `D ${lastD} clients / 1 client`,
      };
      const t = targets.find((t) => t.name === names[`${w.id}|${s.row.impl}`]);
      return t ? `${t.target} ${mark(t.pass)}` : "";
    };

    // ----- the table
    const code = await revision();
    const machine = {
      ...await machineInfo(),
      python: pythonVersion?.replace(/^Python /, ""),
      cc: ccVersion?.split("\n")[0],
    };
    const date = new Date().toISOString();
    const lines: string[] = [];
    lines.push(
      `FIFO echo benchmark, ${date}: ${machine.cpu}, ${machine.cores} cores, ${machine.kernel}, ` +
        `Deno ${machine.deno}${
          machine.python ? `, Python ${machine.python}` : ""
        }; code ${code}. ` +
        `Median of ${reps} interleaved repetition${reps === 1 ? "" : "s"}${
          quick ? " (--quick: small counts)" : ""
        }; ratios are medians of per-repetition ratios to the first row of each workload ` +
        `(for D, to 1 client), their range in parentheses.`,
    );
    lines.push("");
    lines.push(
      "| Workload | Implementation | Median | Ratio | Target | Server peak RSS | OK |",
      "| --- | --- | ---: | ---: | --- | ---: | ---: |",
    );
    let previous = "";
    for (const s of summary) {
      const w = s.row.workload;
      const head = w.id === previous ? "" : `${w.title} (${w.unit})`;
      previous = w.id;
      // The spread of the per-repetition ratios, where there is one: how far to trust it.
      const spread = s.ratios.length > 1 && Math.max(...s.ratios) !== Math.min(...s.ratios)
        ? ` (${Math.min(...s.ratios).toFixed(2)}–${Math.max(...s.ratios).toFixed(2)})`
        : "";
      const ratio = s.ratio === undefined
        ? (s.median === undefined ? "failed" : "—")
        : s.ratio.toFixed(2) + spread;
      const rss = s.peakMiB === undefined ? "—" : `${s.peakMiB.toFixed(1)} MiB`;
      lines.push(
        `| ${head} | ${s.row.label} | ${formatNumber(s.median, w.group)} | ${ratio} | ` +
          `${targetOf(s)} | ${rss} | ${s.ok}/${reps} |`,
      );
    }
    const idleTarget = targets.find((t) => t.name.startsWith("server idle"));
    if (idleTarget) {
      lines.push(
        `| idle | ours: server started, parked before load (VmRSS; async engine ${
          idleAsyncMiB === undefined ? "not run" : `${idleAsyncMiB.toFixed(1)} MiB`
        }) | — | — | ${idleTarget.target} MiB ${mark(idleTarget.pass)} | ` +
          `${idleMiB!.toFixed(1)} MiB | ${idle.length} starts |`,
      );
    }
    const loadTarget = targets.find((t) => t.name.startsWith("server peak"));
    lines.push("");
    const passed = targets.filter((t) => t.pass).length;
    lines.push(
      `Targets: ${passed}/${targets.length} pass.` +
        (loadTarget
          ? ` Our server's worst peak RSS under A–C: ${loadTarget.value!.toFixed(1)} MiB ` +
            `(${loadTarget.target} MiB ${mark(loadTarget.pass)}).`
          : "") +
        ` Took ${elapsed.toFixed(0)} s.`,
    );
    const failures = summary.filter((s) => s.errors.length);
    for (const s of failures) {
      lines.push(`- ${s.row.workload.id} ${s.row.label}: ${s.errors.join("; ")}`);
    }
    for (const note of notes) lines.push(`- ${note}`);
    const markdown = lines.join("\n") + "\n";
    console.log(markdown);

    // ----- files
    const json = {
      date,
      code,
      machine,
      options: { reps, quick, only: [...only], pinned, sizes },
      method: "median of interleaved repetitions; ratio = median of per-repetition ratios " +
        "to the baseline of the same repetition; RSS from /proc/PID/status",
      workloads: selected.map((w) => ({
        id: w.id,
        title: w.title,
        unit: w.unit,
        baseline: w.baseline,
        rows: summary.filter((s) => s.row.workload.id === w.id).map((s) => ({
          impl: s.row.impl,
          label: s.row.label,
          median: s.median,
          ratio: s.ratio,
          values: s.row.cells.map((c) => c.value ?? null),
          ratios: s.ratios,
          peakRssMiB: s.row.cells.map((c) => mib(c.peakKiB) ?? null),
          idleRssMiB: s.row.cells.map((c) => mib(c.idleKiB) ?? null),
          errors: s.errors,
        })),
      })),
      idleRssMiB: { worker: idleMiB, async: idleAsyncMiB },
      targets,
      notes,
      elapsedSeconds: elapsed,
    };
    await Deno.mkdir(RESULTS_DIR, { recursive: true });
    for (
      const [name, text] of [
        ["latest.md", markdown],
        ["latest.json", JSON.stringify(json, null, 2) + "\n"],
      ]
    ) {
      const tmp = `${RESULTS_DIR}/${name}.tmp`;
      await Deno.writeTextFile(tmp, text);
      await Deno.rename(tmp, `${RESULTS_DIR}/${name}`);
    }
    console.error(`wrote bench/results/latest.md and bench/results/latest.json`);
    return 0;
  } finally {
    Deno.removeSignalListener("SIGINT", interrupted);
    Deno.removeSignalListener("SIGTERM", interrupted);
    cleanup();
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
