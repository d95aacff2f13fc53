/**
 * A session client the tests and benchmarks run as a subprocess, so that many clients are
 * many processes, each with its own runtime (and its own blocking-thread pool).
 *
 *     deno run --allow-read=DIR --allow-write=DIR --allow-run=mkfifo tests/session_driver.ts \
 *       MODE --dir DIR [options]
 *
 * Modes:
 * - `echo`: sends `--count` seeded random messages while receiving their echoes
 *   concurrently, and checks every echo byte for byte, in order. `lines` framing sends
 *   random printable bytes, `length` and `raw`-free binary framings send random bytes.
 *   Prints `{"progress":N}` every `--progress` echoes, then one JSON summary line.
 * - `idle`: opens `--idle` session connections that stay silent, then one more that does
 *   `--rounds` checked round trips; then (with `--check-idle`) one round trip on every
 *   idle connection; closes them all and prints a JSON summary.
 * - `stall`: sends one `--size` message and never reads the echo; prints `{"stalled":true}`
 *   and waits (at most `--linger` ms) to be killed.
 *
 * Exits 0 when every check passed, 1 on any mismatch or error (printed to stderr).
 *
 * Imported (by tests/sessions_test.ts, tests/stress_test.ts, bench/naive_ceiling.ts), it
 * is the parent side instead: {@linkcode runDriver}, and the scenarios that start a server
 * in a private directory, run drivers against it and check every result exactly.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect, type ConnectOptions, type FifoConn } from "../lib/connect.ts";
import { hasReader } from "../lib/fifo_file.ts";
import type { Framing } from "../lib/framing.ts";
import { sessionPrefix } from "../lib/session_protocol.ts";
import {
  entries,
  type Proc,
  projectPath,
  type RunOptions,
  spawn,
  startServer,
  tempDir,
  waitUntil,
} from "./helpers.ts";

/** Sizes every `echo` client starts with: the edges of records, PIPE_BUF and pipe buffers. */
export const EDGE_SIZES: readonly number[] = [
  0,
  1,
  4083,
  4084,
  4085,
  4096,
  4097,
  8168,
  65535,
  65536,
  65537,
  131072,
  262144,
];

/** A small, fast, seeded PRNG (mulberry32). */
export class Prng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** The next 32 random bits. */
  next(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A uniform float in [0, 1). */
  float(): number {
    return this.next() / 2 ** 32;
  }
}

/** How message sizes are drawn in `[0, max]`. */
export type SizeDistribution = "uniform" | "log";

/**
 * The seeded message sequence of one client; two instances with the same arguments yield
 * the same messages, so the receiver regenerates what the sender sent instead of storing
 * it. Sizes and contents come from two generators, so sizes alone replay cheaply.
 */
export class MessageSource {
  #sizes: Prng;
  #bytes: Prng;
  #framing: Framing;
  #maxSize: number;
  #dist: SizeDistribution;
  #index = 0;

  constructor(seed: number, framing: Framing, maxSize: number, dist: SizeDistribution) {
    this.#sizes = new Prng(seed);
    this.#bytes = new Prng(seed ^ 0x9e3779b9);
    this.#framing = framing;
    this.#maxSize = maxSize;
    this.#dist = dist;
  }

  /** The size of the next message (only sizes: use either this or `next`, not both). */
  nextSize(): number {
    const i = this.#index++;
    if (i < EDGE_SIZES.length && EDGE_SIZES[i] <= this.#maxSize) return EDGE_SIZES[i];
    const r = this.#sizes.float();
    if (this.#dist === "uniform") return Math.floor(r * (this.#maxSize + 1));
    // Log-uniform: as many tiny as huge messages, a mean far below the maximum.
    return Math.min(Math.floor(Math.pow(this.#maxSize + 2, r)) - 1, this.#maxSize);
  }

  /** The next message. */
  next(): Uint8Array {
    const size = this.nextSize();
    const bytes = new Uint8Array(size);
    const prng = this.#bytes;
    if (this.#framing === "lines") {
      // Printable ASCII (0x20..0x7e): never a newline.
      for (let i = 0; i < size; i++) bytes[i] = 0x20 + (prng.next() % 95);
    } else {
      const words = new Uint32Array(bytes.buffer, 0, size >>> 2);
      for (let i = 0; i < words.length; i++) words[i] = prng.next();
      for (let i = words.length * 4; i < size; i++) bytes[i] = prng.next() & 0xff;
    }
    return bytes;
  }
}

/** The payload bytes of a client's first `count` messages. */
export function payloadBytes(
  seed: number,
  framing: Framing,
  maxSize: number,
  dist: SizeDistribution,
  count: number,
): number {
  const source = new MessageSource(seed, framing, maxSize, dist);
  let total = 0;
  for (let i = 0; i < count; i++) total += source.nextSize();
  return total;
}

/** Where two byte arrays first differ, or -1. */
function firstDifference(a: Uint8Array, b: Uint8Array): number {
  const n = Math.min(a.length, b.length);
  for (let i = 0; i < n; i++) if (a[i] !== b[i]) return i;
  return a.length === b.length ? -1 : n;
}

function fail(message: string): never {
  throw new Error(message);
}

/** Receives the next echo and checks it against `expected`. */
async function expectEcho(
  conn: FifoConn,
  expected: Uint8Array,
  index: number,
  timeout: number,
): Promise<void> {
  const got = await conn.receive({ timeout });
  if (got === null) fail(`The server ended the stream before echo #${index}`);
  const at = firstDifference(got, expected);
  if (at >= 0) {
    fail(
      `Echo #${index} differs at byte ${at}: got ${got.length} bytes, expected ${expected.length}`,
    );
  }
}

function print(value: unknown): void {
  console.log(JSON.stringify(value));
}

/** The parsed command line of a driver process. */
interface DriverArgs {
  dir: string;
  name: string;
  framing: Framing;
  timeout: number;
  connectOptions: ConnectOptions;
  values: Record<string, string | boolean | undefined>;
}

/** `echo`: send while receiving, check every echo. */
async function runEcho({ framing, timeout, connectOptions, values }: DriverArgs) {
  const seed = Number(values.seed);
  const count = Number(values.count);
  const maxSize = Number(values["max-size"]);
  const dist = values.dist as SizeDistribution;
  const progressEvery = Number(values.progress);
  const started = performance.now();
  await using conn = await connect(connectOptions);
  const outgoing = new MessageSource(seed, framing, maxSize, dist);
  const expected = new MessageSource(seed, framing, maxSize, dist);
  let payload = 0;
  const sender = (async () => {
    for (let i = 0; i < count; i++) {
      const message = outgoing.next();
      payload += message.length;
      await conn.send(message);
    }
  })();
  const receiver = (async () => {
    for (let i = 0; i < count; i++) {
      await expectEcho(conn, expected.next(), i, timeout);
      if (progressEvery && (i + 1) % progressEvery === 0) print({ progress: i + 1 });
    }
  })();
  await Promise.all([sender, receiver]);
  return {
    ok: true,
    mode: conn.mode,
    framing,
    seed,
    messages: count,
    payloadBytes: payload,
    sentBytes: conn.sentBytes,
    receivedBytes: conn.receivedBytes,
    ms: Math.round(performance.now() - started),
  };
}

/** Counts server `name`'s session directories in `dir`. */
function sessionDirs(dir: string, name: string): number {
  let n = 0;
  for (const entry of Deno.readDirSync(dir)) {
    if (entry.isDirectory && entry.name.startsWith(sessionPrefix(name))) n++;
  }
  return n;
}

/** `idle`: many silent sessions, one busy one. */
async function runIdle({ dir, name, framing, timeout, connectOptions, values }: DriverArgs) {
  const idleCount = Number(values.idle);
  const rounds = Number(values.rounds);
  const concurrency = Math.max(1, Number(values.concurrency));
  const maxSize = Number(values["max-size"]);
  const idle: FifoConn[] = [];
  try {
    const connectStart = performance.now();
    while (idle.length < idleCount) {
      // A few at a time: each connect parks one blocking open until the server answers.
      const batch = Math.min(concurrency, idleCount - idle.length);
      const settled = await Promise.allSettled(
        Array.from({ length: batch }, () => connect(connectOptions)),
      );
      for (const result of settled) {
        if (result.status === "fulfilled") idle.push(result.value);
      }
      const failed = settled.find((r) => r.status === "rejected");
      if (failed) throw (failed as PromiseRejectedResult).reason;
    }
    const connectMs = performance.now() - connectStart;
    if (idle.some((c) => c.mode !== "session")) fail("An idle connection is not a session");

    await using active = await connect(connectOptions);
    const dirsWhileConnected = sessionDirs(dir, name);
    const source = new MessageSource(Number(values.seed), framing, maxSize, "log");
    const times: number[] = [];
    let activeBytes = 0;
    for (let i = 0; i < rounds; i++) {
      const message = source.next();
      activeBytes += message.length;
      const t0 = performance.now();
      await active.send(message);
      await expectEcho(active, message, i, timeout);
      times.push(performance.now() - t0);
    }
    let idleChecked = 0;
    if (values["check-idle"]) {
      // One by one: a pending read per connection would park a thread each.
      const probe = new TextEncoder().encode("still here");
      for (const conn of idle) {
        await conn.send(probe);
        await expectEcho(conn, probe, idleChecked++, timeout);
      }
    }
    times.sort((a, b) => a - b);
    const ms = (x: number) => Math.round(x * 1000) / 1000;
    return {
      ok: true,
      idle: idle.length,
      rounds,
      activeBytes,
      idleChecked,
      sessionDirs: dirsWhileConnected,
      connectMs: Math.round(connectMs),
      roundTripMs: {
        p50: ms(times[Math.floor(times.length / 2)] ?? 0),
        p90: ms(times[Math.floor(times.length * 0.9)] ?? 0),
        max: ms(times.at(-1) ?? 0),
      },
    };
  } finally {
    for (const conn of idle) await conn.close();
  }
}

/** `stall`: one big message whose echo is never read. */
async function runStall({ connectOptions, values }: DriverArgs): Promise<never> {
  const conn = await connect(connectOptions);
  const big = new Uint8Array(Number(values.size)).fill(0x61);
  await conn.send(big);
  print({ stalled: true, mode: conn.mode, bytes: big.length });
  await new Promise((resolve) => setTimeout(resolve, Number(values.linger)));
  await conn.close();
  fail(`Not killed within ${values.linger} ms`);
}

async function main(args: string[]): Promise<number> {
  try {
    const { positionals, values } = parseArgs({
      args,
      allowPositionals: true,
      strict: true,
      options: {
        dir: { type: "string" },
        name: { type: "string", default: "pipe" },
        framing: { type: "string", default: "lines" },
        mode: { type: "string", default: "session" },
        seed: { type: "string", default: "1" },
        count: { type: "string", default: "100" },
        "max-size": { type: "string", default: String(256 * 1024) },
        dist: { type: "string", default: "uniform" },
        progress: { type: "string", default: "0" },
        idle: { type: "string", default: "0" },
        rounds: { type: "string", default: "100" },
        concurrency: { type: "string", default: "8" },
        "check-idle": { type: "boolean", default: false },
        size: { type: "string", default: String(512 * 1024) },
        linger: { type: "string", default: "60000" },
        timeout: { type: "string", default: "30000" },
      },
    });
    const dir = values.dir ?? fail("--dir is required");
    const framing = values.framing as Framing;
    const timeout = Number(values.timeout);
    const mode = values.mode as ConnectOptions["mode"];
    const driver: DriverArgs = {
      dir,
      name: values.name,
      framing,
      timeout,
      connectOptions: { dir, name: values.name, framing, mode, timeout },
      values,
    };
    const command = positionals[0];
    const result = command === "echo"
      ? await runEcho(driver)
      : command === "idle"
      ? await runIdle(driver)
      : command === "stall"
      ? await runStall(driver)
      : fail(`Unknown mode "${command}": expected echo, idle or stall`);
    print(result);
    return 0;
  } catch (error) {
    console.error(`session_driver: ${error instanceof Error ? error.message : error}`);
    return 1;
  }
}

// ---------------------------------------------------------------------------------------
// The parent side: how tests and benchmarks run drivers against a server.

/** Runs a driver in `dir` as a subprocess with just the permissions a client needs. */
export function runDriver(
  dir: string,
  command: "echo" | "idle" | "stall",
  args: string[],
  options: RunOptions = {},
): Proc {
  return spawn(Deno.execPath(), [
    "run",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
    "--allow-run=mkfifo",
    projectPath("tests/session_driver.ts"),
    command,
    "--dir",
    dir,
    ...args,
  ], options);
}

/**
 * Starts a server like {@linkcode startServer}, then also waits until it reads its request
 * FIFO: `startServer` returns once `NAME.ctl` exists, a moment before the server opens it,
 * and a session client arriving in between finds no server.
 */
export async function startSessionServer(
  dir: string,
  args: string[] = [],
  options: RunOptions = {},
): Promise<Proc> {
  const server = await startServer(dir, args, options);
  const name = args.includes("--name") ? args[args.indexOf("--name") + 1] : "pipe";
  try {
    await waitUntil(() => hasReader(`${dir}/${name}.ctl`), 15_000, `a reader on ${name}.ctl`);
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
  return server;
}

/** The last JSON line a driver printed: its summary. */
export function summaryOf(stdout: string): Record<string, unknown> {
  const lines = stdout.trim().split("\n");
  return JSON.parse(lines.at(-1) ?? "null");
}

/** The server's own FIFOs and private directory, as {@linkcode entries} lists them. */
export function serverFiles(name = "pipe"): string[] {
  return [`.${name}.keep-*`, `${name}.ctl`, `${name}.in`, `${name}.out`];
}

/** Stops a server with SIGTERM and returns its final `server stopped: …` line. */
export async function stopServer(server: Proc): Promise<string> {
  server.child.kill("SIGTERM");
  const { code, stdout, stderr } = await server.done;
  if (code !== 0) throw new Error(`The server exited with ${code}: ${stderr}`);
  return stdout.trim().split("\n").at(-1) ?? "";
}

/** The line a server prints when it stops, without its duration. */
export function stoppedLine(messages: number, bytes: number, clients: number, sessions: number) {
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
  return `server stopped: ${plural(messages, "message")}, ${plural(bytes, "byte")}, ` +
    `${plural(clients, "client")} (${sessions} in sessions), `;
}

/** Options of {@linkcode echoScenario}. */
export interface EchoScenario {
  framing: Framing;
  clients: number;
  count: number;
  dist: SizeDistribution;
  maxSize?: number;
  /** SIGKILL this many clients once they are mid-stream. */
  kill?: number;
  /** Deadline of every subprocess, in ms. */
  deadline?: number;
  /** Check that nothing of the killed clients is left, once the server noticed. */
  checkLeftovers?: boolean;
}

/**
 * N driver processes against one server in a private directory: every survivor must get
 * exactly its own messages back; the server must stop cleanly and leave nothing behind.
 *
 * @returns What the survivors reported.
 */
export async function echoScenario(scenario: EchoScenario): Promise<Record<string, unknown>[]> {
  const { framing, clients, count, dist, kill = 0 } = scenario;
  const maxSize = scenario.maxSize ?? 256 * 1024;
  const deadline = scenario.deadline ?? 60_000;
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startSessionServer(dir, ["--framing", framing], { deadline });
  const procs: Proc[] = [];
  try {
    const victimCount = 100_000;
    for (let i = 0; i < clients; i++) {
      const victim = i < kill;
      procs.push(runDriver(dir, "echo", [
        "--framing",
        framing,
        "--seed",
        String(1000 + i),
        "--count",
        String(victim ? victimCount : count),
        "--dist",
        dist,
        "--max-size",
        String(maxSize),
        ...(victim ? ["--progress", "5"] : []),
      ], { deadline }));
    }
    const victims = procs.slice(0, kill);
    const survivors = procs.slice(kill);
    // Kill each victim once it is well into its stream (and long before its end).
    await Promise.all(victims.map(async (victim) => {
      await waitUntil(() => victim.stdout().includes(`{"progress":10}`), deadline, "progress");
      victim.child.kill("SIGKILL");
      const { signal } = await victim.done;
      if (signal !== "SIGKILL") throw new Error(`A victim was not killed: ${signal}`);
    }));
    const results = await Promise.all(survivors.map((p) => p.done));
    const summaries: Record<string, unknown>[] = [];
    let messages = 0;
    let bytes = 0;
    for (const [i, result] of results.entries()) {
      if (result.code !== 0) {
        throw new Error(`Client ${kill + i} exited with ${result.code}: ${result.stderr}`);
      }
      const seed = 1000 + kill + i;
      const payload = payloadBytes(seed, framing, maxSize, dist, count);
      const overhead = framing === "length" ? 4 : framing === "lines" ? 1 : 0;
      const expected = {
        ok: true,
        mode: "session",
        framing,
        seed,
        messages: count,
        payloadBytes: payload,
        sentBytes: payload + overhead * count,
        receivedBytes: payload + overhead * count,
      };
      const summary = summaryOf(result.stdout);
      const { ms: _, connectRetries: __, ...exact } = summary;
      if (JSON.stringify(exact) !== JSON.stringify(expected)) {
        throw new Error(
          `Client ${kill + i}: ${JSON.stringify(exact)} != ${JSON.stringify(expected)}`,
        );
      }
      summaries.push(summary);
      messages += count;
      bytes += payload;
    }
    if (kill && scenario.checkLeftovers) {
      // The server's liveness sweeps back off to one every 8 s while nothing changes.
      await waitUntil(
        () => JSON.stringify(entries(dir)) === JSON.stringify(serverFiles()),
        15_000,
        `only the server's FIFOs in ${dir} (have ${entries(dir).join(" ")})`,
      );
    }
    const line = await stopServer(server);
    if (kill) {
      if (!line.includes(`${clients} clients (${clients} in sessions)`)) {
        throw new Error(`Unexpected final line: ${line}`);
      }
    } else if (!line.startsWith(stoppedLine(messages, bytes, clients, clients))) {
      throw new Error(`Unexpected final line: ${line}`);
    }
    if (kill === 0 || scenario.checkLeftovers) {
      const left = entries(dir);
      if (left.length) throw new Error(`Left in ${dir}: ${left.join(" ")}`);
    } else {
      const left = entries(dir).filter((e) => !e.startsWith(sessionPrefix("pipe")));
      if (left.length) throw new Error(`Left in ${dir}: ${left.join(" ")}`);
    }
    return summaries;
  } finally {
    for (const proc of procs) await proc[Symbol.asyncDispose]();
  }
}

/** Options of {@linkcode idleScenario}. */
export interface IdleScenario {
  idle: number;
  rounds: number;
  deadline?: number;
  /** Also one round trip on every idle connection at the end. */
  checkIdle?: boolean;
}

/**
 * One server, one driver process holding `idle` silent sessions while one more does
 * `rounds` checked round trips.
 *
 * @returns The driver's summary (connect time, round-trip times).
 */
export async function idleScenario(scenario: IdleScenario): Promise<Record<string, unknown>> {
  const deadline = scenario.deadline ?? 120_000;
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startSessionServer(dir, [], { deadline });
  await using driver = runDriver(dir, "idle", [
    "--idle",
    String(scenario.idle),
    "--rounds",
    String(scenario.rounds),
    ...(scenario.checkIdle ? ["--check-idle"] : []),
  ], { deadline });
  const result = await driver.done;
  if (result.code !== 0) throw new Error(`The driver exited with ${result.code}: ${result.stderr}`);
  const summary = summaryOf(result.stdout);
  const sessions = scenario.idle + 1;
  const expected = {
    ok: true,
    idle: scenario.idle,
    rounds: scenario.rounds,
    idleChecked: scenario.checkIdle ? scenario.idle : 0,
    sessionDirs: sessions,
  };
  const { connectMs: _c, roundTripMs: _r, connectRetries: _n, activeBytes, ...exact } = summary;
  if (JSON.stringify(exact) !== JSON.stringify(expected)) {
    throw new Error(`${JSON.stringify(exact)} != ${JSON.stringify(expected)}`);
  }
  // The clients closed: their directories are gone at once.
  const left = entries(dir);
  if (JSON.stringify(left) !== JSON.stringify(serverFiles())) {
    throw new Error(`Left in ${dir} after the clients closed: ${left.join(" ")}`);
  }
  const line = await stopServer(server);
  const messages = scenario.rounds + (scenario.checkIdle ? scenario.idle : 0);
  const bytes = (activeBytes as number) + (scenario.checkIdle ? scenario.idle * 10 : 0);
  if (!line.startsWith(stoppedLine(messages, bytes, sessions, sessions))) {
    throw new Error(`Unexpected final line: ${line}`);
  }
  if (entries(dir).length) throw new Error(`Left in ${dir}: ${entries(dir).join(" ")}`);
  return summary;
}

if (import.meta.main) Deno.exit(await main(Deno.args));
