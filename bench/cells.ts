/**
 * The benchmark's workloads and the cells that measure them: one implementation, one
 * workload, one repetition, each with fresh FIFOs and a fresh server.
 *
 * Our server always runs as users run it: `server.ts` with the card's permissions
 * (`--allow-read=/tmp --allow-write=/tmp --allow-run=mkfifo`) and its default engine, from
 * a temporary directory (never the repository), `--quiet`.
 *
 * @module
 */
import { fileURLToPath } from "node:url";
import {
  countersOf,
  finish,
  lastLine,
  memoryOf,
  parkedInOpen,
  parseResult,
  readProc,
  run,
  sleep,
  spawn,
  type Spawned,
  switchesBetween,
  watchMemory,
} from "./procs.ts";
import { stopProcess } from "../tools/spawn.ts";

export const BENCH_DIR = fileURLToPath(new URL(".", import.meta.url));
export const ROOT = fileURLToPath(new URL("..", import.meta.url));
export const MiB = 1024 * 1024;
/** The card's permissions: what users run our server and client with. */
export const CARD = ["--allow-read=/tmp", "--allow-write=/tmp", "--allow-run=mkfifo"];
/** A D cell: `clients` session clients shared out over `processes` driver processes. */
export interface SessionLayout {
  clients: number;
  processes: number;
}

/** The workload id of a D layout: `D-256`, or `D-256-in-16` over several processes. */
export function sessionsId({ clients, processes }: SessionLayout): `D-${string}` {
  return processes === 1 ? `D-${clients}` : `D-${clients}-in-${processes}`;
}

/** The layout a D workload id names. */
export function sessionLayout(id: string): SessionLayout {
  const [, clients, processes] = id.match(/^D-(\d+)(?:-in-(\d+))?$/) ?? [];
  return { clients: Number(clients), processes: Number(processes ?? 1) };
}

export interface Sizes {
  pingCount: number;
  pingSize: number;
  pipeCount: number;
  pipeSize: number;
  bulkTotal: number;
  bulkChunk: number;
  /** Messages per D cell, shared out over its clients. */
  sessionTotal: number;
  sessionClients: SessionLayout[];
  sessionSize: number;
  /** E: lines through `client.ts --stdin`. */
  filterLines: number;
  /** F: idle sessions held open, and seconds each idle figure is measured over. */
  idleSessions: number;
  idleSeconds: number;
  /**
   * F with sessions: seconds to let the liveness sweeps back off to their longest gap
   * (8 s, reached 7.75 s after the opens), then seconds measured: one such gap.
   */
  idleSettleSeconds: number;
  idleSessionSeconds: number;
}

export const FULL: Sizes = {
  pingCount: 20_000,
  pingSize: 100,
  pipeCount: 200_000,
  pipeSize: 64,
  bulkTotal: 256 * MiB,
  bulkChunk: 64 * 1024,
  sessionTotal: 20_480,
  // 256 in one process, as users would hold them since a process may hold any number; and
  // over 16 processes, the layout the bench used while 32 pending receives stalled one.
  sessionClients: [
    { clients: 1, processes: 1 },
    { clients: 16, processes: 1 },
    { clients: 256, processes: 1 },
    { clients: 256, processes: 16 },
  ],
  sessionSize: 64,
  filterLines: 1_000_000,
  idleSessions: 1000,
  idleSeconds: 5,
  idleSettleSeconds: 8,
  idleSessionSeconds: 8,
};

export const QUICK: Sizes = {
  ...FULL,
  pingCount: 2_000,
  pipeCount: 20_000,
  bulkTotal: 16 * MiB,
  sessionTotal: 2_048,
  filterLines: 100_000,
  idleSessions: 100,
  idleSeconds: 2,
  idleSettleSeconds: 1,
  idleSessionSeconds: 2,
};

/** A workload of one run. */
export type WorkloadId =
  | "A"
  | "B"
  | "C-raw"
  | "C-length"
  | `D-${string}`
  | "E-session"
  | "E-shared"
  | "F-none"
  | "F-idle";
/**
 * An implementation: `c` and `py` the baselines, `deno` Deno's floor (`deno_echo.ts`),
 * `oursC` our server driven by the C pair's own client (the ratio then compares servers
 * alone), `ours` our server driven by our blocking client, `conn` and `session` our
 * `FifoConn` client on the plain pair and in a session, `sessions` D's many session clients,
 * `filter` `client.ts --stdin`, `idle` F's probe, `idlePlain` the same with `--no-sessions`
 * (the plain pair's share of the idle cost).
 */
export type ImplId =
  | "c"
  | "py"
  | "deno"
  | "oursC"
  | "ours"
  | "conn"
  | "session"
  | "sessions"
  | "filter"
  | "idle"
  | "idlePlain";

export interface Workload {
  id: WorkloadId;
  group: "A" | "B" | "C" | "D" | "E" | "F";
  title: string;
  unit: string;
  impls: ImplId[];
  /** The implementation ratios are taken against, if any. */
  baseline?: ImplId | WorkloadId;
  /** Seconds any one process of a cell may take. */
  deadline: number;
}

export interface Env {
  work: string;
  cEcho: string | undefined;
  python: boolean;
  sizes: Sizes;
  deno: string;
}

export interface CellResult {
  value?: number;
  /** E: the client's peak RSS. */
  clientPeakKiB?: number;
  /** F: CPU of the server (% of one core) and its wake-ups per second over the window. */
  cpuPercent?: number;
  wakeups?: number;
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

/** Our benchmark client: the card's permissions, and reading the repository for its worker. */
function loadTs(env: Env, _dir: string, args: string[]): [string, string[]] {
  return [env.deno, [
    "run",
    "-q",
    `--allow-read=/tmp,${ROOT}`,
    "--allow-write=/tmp",
    "--allow-run=mkfifo",
    `${BENCH_DIR}load.ts`,
    ...args,
  ]];
}

/** A baseline cell: a fresh FIFO pair, a C/Python/cat server that exits at EOF, a client. */
async function baselineCell(
  env: Env,
  w: Workload,
  impl: "c" | "py" | "deno",
): Promise<CellResult> {
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
  } else if (impl === "deno") {
    server = spawn(env.deno, [
      "run",
      "-q",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      `${BENCH_DIR}deno_echo.ts`,
      input,
      output,
    ]);
    client = env.cEcho ? [env.cEcho, ["client", ...args]] : loadTs(env, dir, args);
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
    if (name === "deno" && impl === "deno" && await parkedInOpen(server.pid) !== false) break;
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
export async function startOurServer(
  env: Env,
  dir: string,
  framing: string,
  extra: string[] = [],
): Promise<{ server: Spawned; idleKiB?: number }> {
  // The card's permissions exactly, the default engine, from a directory that is not ours.
  const server = spawn(env.deno, [
    "run",
    "-q",
    ...CARD,
    `${ROOT}server.ts`,
    "--dir",
    dir,
    "--name",
    "bench",
    "--quiet",
    "--framing",
    framing,
    ...extra,
  ], { cwd: dir });
  let exited = false;
  server.exited.then(() => exited = true);
  const made = extra.includes("--no-sessions") ? ["in", "out"] : ["in", "out", "ctl"];
  const fifos = made.map((ext) => `${dir}/bench.${ext}`);
  const deadline = Date.now() + 15_000;
  let parked: boolean | undefined = false;
  for (;;) {
    if (exited) throw new Error(`server exited at start: ${lastLine(server.stderr())}`);
    if (Date.now() > deadline) {
      await stopProcess(server, 1000);
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
async function ourCell(env: Env, w: Workload, impl: "oursC" | "ours" | "conn" | "session") {
  const dir = await freshDir(env);
  let started: { server: Spawned; idleKiB?: number } | undefined;
  let memory: ReturnType<typeof watchMemory> | undefined;
  try {
    started = await startOurServer(env, dir, framingOf(w));
    memory = watchMemory(started.server.pid);
    let args = clientArgs(w, env.sizes, `${dir}/bench.in`, `${dir}/bench.out`);
    if (impl === "conn" || impl === "session") args = [impl, ...args.slice(1)];
    if (impl === "oursC" && !env.cEcho) throw new Error("no C compiler: no C client");
    const client: [string, string[]] = impl === "oursC"
      ? [env.cEcho!, ["client", ...args]]
      : loadTs(env, dir, args);
    const proc = spawn(...client);
    const status = await finish(proc, w.deadline * 1000);
    const peakKiB = await memory.stop();
    if (!status) return { error: `client killed after ${w.deadline} s`, idleKiB: started.idleKiB };
    if (!status.success) {
      return { error: `client: ${lastLine(proc.stderr())}`, idleKiB: started.idleKiB };
    }
    return { value: figure(w, parseResult(proc.stdout())), peakKiB, idleKiB: started.idleKiB };
  } finally {
    await memory?.stop();
    if (started) await stopProcess(started.server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Workload D: session clients over driver processes (see `SessionLayout`), one start barrier. */
async function sessionsCell(env: Env, w: Workload): Promise<CellResult> {
  const { clients, processes } = sessionLayout(w.id);
  const dir = await freshDir(env);
  const drivers: Spawned[] = [];
  let started: { server: Spawned; idleKiB?: number } | undefined;
  let memory: ReturnType<typeof watchMemory> | undefined;
  try {
    started = await startOurServer(env, dir, "lines");
    memory = watchMemory(started.server.pid);
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
      await d.write("go\n");
      await d.closeStdin();
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
    if (started) await stopProcess(started.server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** Runs argv[3:] from file argv[1] to file argv[2]; prints its time and peak RSS. */
const TIME_CHILD = `
import json, resource, subprocess, sys, time
with open(sys.argv[1], "rb") as i, open(sys.argv[2], "wb") as o:
    t = time.monotonic()
    code = subprocess.run(sys.argv[3:], stdin=i, stdout=o).returncode
    seconds = time.monotonic() - t
print(json.dumps({"seconds": seconds,
    "maxrssKiB": resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss}))
sys.exit(code)
`;

let filterInput: { path: string; bytes: Uint8Array } | undefined;

/**
 * E's input, made once per run: `lines` lines of 25 bytes, every byte value but `\n` among
 * them (every 7th line carries bytes that are not UTF-8), the last one without `\n`.
 */
async function filterInputOf(env: Env) {
  if (filterInput) return filterInput;
  const lines = env.sizes.filterLines;
  const bytes = new Uint8Array(lines * 25 - 1);
  const digits = new TextEncoder().encode("line 0000000000000000000\n");
  for (let i = 0; i < lines; i++) {
    const line = bytes.subarray(i * 25, i * 25 + 25);
    line.set(digits.subarray(0, Math.min(25, bytes.length - i * 25)));
    let n = i;
    for (let d = 23; d >= 5 && n > 0; d--, n = Math.floor(n / 10)) line[d] = 48 + (n % 10);
    if (i % 7 === 3) line.set([0xff, 0xfe, 0x00, 0x0d, i % 256 === 10 ? 11 : i % 256], 0);
  }
  const path = `${env.work}/e-input`;
  await Deno.writeFile(path, bytes);
  filterInput = { path, bytes };
  return filterInput;
}

/** E: `client.ts --stdin` (or `cat` through the C echo pair) from a file to a file. */
async function filterCell(env: Env, w: Workload, impl: ImplId): Promise<CellResult> {
  if (!env.python) throw new Error("python3 is missing: it times the client");
  const input = await filterInputOf(env);
  const dir = await freshDir(env);
  const output = `${dir}/e-output`;
  let server: Spawned | undefined;
  let idleKiB: number | undefined;
  let command: string[];
  if (impl === "c") {
    if (!env.cEcho) throw new Error("no C compiler: no baseline");
    const [fifoIn, fifoOut] = await mkfifos(dir);
    server = spawn(env.cEcho, ["server", fifoIn, fifoOut]);
    command = ["sh", "-c", `exec 3<&0; cat <&3 >"$1" & cat <"$2"; wait`, "sh", fifoIn, fifoOut];
  } else {
    ({ server, idleKiB } = await startOurServer(env, dir, "lines"));
    const mode = w.id === "E-shared" ? ["--shared"] : [];
    command = [
      env.deno,
      "run",
      "-q",
      ...CARD,
      `${ROOT}client.ts`,
      "--dir",
      dir,
      "--name",
      "bench",
      "--stdin",
    ];
    command.push(...mode);
  }
  const memory = watchMemory(server.pid);
  try {
    // Python's getrusage(RUSAGE_CHILDREN) gives the client's exact peak RSS, which
    // sampling /proc would miss in a run this short.
    const client = spawn("python3", ["-c", TIME_CHILD, input.path, output, ...command], {
      cwd: dir,
    });
    const status = await finish(client, w.deadline * 1000);
    const peakKiB = await memory.stop();
    if (!status) return { error: `client killed after ${w.deadline} s` };
    if (!status.success) return { error: `client: ${lastLine(client.stderr())}` };
    const { seconds, maxrssKiB: clientPeakKiB } = JSON.parse(client.stdout());
    const echoed = await Deno.readFile(output);
    const same = echoed.length === input.bytes.length &&
      echoed.every((byte, i) => byte === input.bytes[i]);
    if (!same) return { error: `the output differs from the input (${echoed.length} bytes)` };
    return {
      value: env.sizes.filterLines / seconds,
      peakKiB: impl === "c" ? undefined : peakKiB,
      idleKiB,
      clientPeakKiB: impl === "c" ? undefined : clientPeakKiB,
    };
  } finally {
    await memory.stop();
    if (impl === "c") server.kill("SIGKILL");
    await stopProcess(server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/**
 * F: our server's cost while nobody talks. `F-none`: no client at all, its wake-ups (context
 * switches of all its threads) per second. `F-idle`: with `idleSessions` silent sessions
 * held open by one Python process, its CPU as % of one core.
 */
async function idleCell(env: Env, w: Workload, impl: ImplId): Promise<CellResult> {
  const dir = await freshDir(env);
  let holder: Spawned | undefined;
  const extra = impl === "idlePlain" ? ["--no-sessions"] : [];
  const started = await startOurServer(env, dir, "lines", extra);
  let window = env.sizes.idleSeconds;
  try {
    if (w.id === "F-idle") {
      const count = env.sizes.idleSessions;
      const ready = Promise.withResolvers<void>();
      let seen = "";
      holder = spawn("python3", [`${BENCH_DIR}idle_sessions.py`, dir, "bench", `${count}`], {
        stdin: "piped",
        onStdout(text) {
          seen += text;
          if (seen.includes('"ready"')) ready.resolve();
        },
      });
      const outcome = await Promise.race([
        ready.promise.then(() => "ready"),
        holder.exited.then(() => "exited"),
        sleep(w.deadline * 1000).then(() => "timeout"),
      ]);
      if (outcome !== "ready") {
        return { error: `idle sessions: ${lastLine(holder.stderr()) || outcome}` };
      }
      // The server's liveness sweeps back off after the burst of opens: let them settle.
      await sleep(env.sizes.idleSettleSeconds * 1000);
      window = env.sizes.idleSessionSeconds;
    }
    const before = await countersOf(started.server.pid);
    await sleep(window * 1000);
    const after = await countersOf(started.server.pid);
    if (!before || !after) return { error: "/proc/PID/stat unreadable" };
    const seconds = (after.at - before.at) / 1000;
    const cpuPercent = (after.cpuSeconds - before.cpuSeconds) / seconds * 100;
    const wakeups = switchesBetween(before, after) / seconds;
    const memory = await memoryOf(started.server.pid);
    return {
      value: w.id === "F-none" ? wakeups : cpuPercent,
      cpuPercent,
      wakeups,
      peakKiB: memory?.rssKiB,
      idleKiB: started.idleKiB,
    };
  } finally {
    if (holder) {
      await holder.closeStdin().catch(() => {});
      await finish(holder, 10_000);
    }
    await stopProcess(started.server);
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

export async function runCell(env: Env, w: Workload, impl: ImplId): Promise<CellResult> {
  try {
    if ((impl === "c" || impl === "py" || impl === "deno") && w.group !== "E") {
      return await baselineCell(env, w, impl);
    }
    if (impl === "sessions") return await sessionsCell(env, w);
    if (w.group === "E") return await filterCell(env, w, impl);
    if (impl === "idle" || impl === "idlePlain") return await idleCell(env, w, impl);
    if (impl === "oursC" || impl === "ours" || impl === "conn" || impl === "session") {
      return await ourCell(env, w, impl);
    }
    throw new Error(`no cell for ${impl} in ${w.id}`);
  } catch (error) {
    return { error: (error as Error)?.message ?? String(error) };
  }
}

export function workloads(sizes: Sizes, only: Set<string>, python: boolean): Workload[] {
  const baselines: ImplId[] = python ? ["c", "py"] : ["c"];
  // Deno's floor and our server, both driven by the C client (as issue 9 measured), then
  // our server driven by our own client.
  const ours: ImplId[] = ["deno", "oursC", "ours"];
  const list: Workload[] = [
    {
      id: "A",
      group: "A",
      title: `A ping-pong ${sizes.pingSize} B × ${sizes.pingCount.toLocaleString("en-US")}`,
      unit: "round trips/s",
      impls: [...baselines, ...ours, "conn", "session"],
      baseline: "c",
      deadline: 60,
    },
    {
      id: "B",
      group: "B",
      title: `B pipelined ${sizes.pipeSize} B × ${sizes.pipeCount.toLocaleString("en-US")}`,
      unit: "messages/s",
      impls: [...baselines, ...ours],
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
      impls: [...baselines, ...ours],
      baseline: "c",
      deadline: 120,
    })),
    ...sizes.sessionClients.map((layout): Workload => ({
      id: sessionsId(layout),
      group: "D",
      title: `D sessions, ${layout.clients} client${layout.clients === 1 ? "" : "s"}${
        layout.processes === 1 ? "" : ` in ${layout.processes} processes`
      }, ping-pong ${sizes.sessionSize} B`,
      unit: "messages/s",
      impls: ["sessions"],
      baseline: sessionsId(sizes.sessionClients[0]),
      deadline: 120,
    })),
    ...(["session", "shared"] as const).map((mode): Workload => ({
      id: `E-${mode}`,
      group: "E",
      title: `E client.ts --stdin${mode === "shared" ? " --shared" : ""}, ${
        sizes.filterLines.toLocaleString("en-US")
      } lines of 25 B, byte-exact`,
      unit: "lines/s",
      impls: ["c", "filter"],
      baseline: "c",
      deadline: 120,
    })),
    {
      id: "F-none",
      group: "F",
      title: `F idle, no client, ${sizes.idleSeconds} s`,
      unit: "wake-ups/s",
      impls: ["idle", "idlePlain"],
      deadline: 60,
    },
    {
      id: "F-idle",
      group: "F",
      title: `F idle, ${
        sizes.idleSessions.toLocaleString("en-US")
      } silent sessions, ${sizes.idleSessionSeconds} s`,
      unit: "% of a core",
      impls: python ? ["idle"] : [],
      deadline: 120,
    },
  ];
  return list.filter((w) => only.has(w.group));
}
