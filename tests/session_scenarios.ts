/**
 * The parent side of `session_driver.ts`: how tests and benchmarks run driver processes
 * against a server in a private directory and check every result exactly.
 *
 * @module
 */
import type { Framing } from "../lib/framing/framing.ts";
import { hasReader } from "../lib/fifo/fifo_file.ts";
import { sessionPrefix } from "../lib/session/session_protocol.ts";
import {
  entries,
  flagsFor,
  type Proc,
  projectPath,
  type RunOptions,
  spawn,
  startServer,
  stopServer,
  tempDir,
  waitUntil,
} from "./helpers.ts";
import { payloadBytes, type SizeDistribution } from "./message_source.ts";

/** Runs a driver in `dir` as a subprocess with just the permissions a client needs. */
export function runDriver(
  dir: string,
  command: "echo" | "idle" | "stall",
  args: string[],
  options: RunOptions = {},
): Proc {
  const script = projectPath("tests/session_driver.ts");
  return spawn(
    Deno.execPath(),
    ["run", ...flagsFor("client.ts", dir), script, command, "--dir", dir, ...args],
    options,
  );
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
  /** Every idle connection keeps a receive pending all along. */
  listening?: boolean;
  /** Idle connections opened at once (the driver's default: 8). */
  concurrency?: number;
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
    ...(scenario.listening ? ["--listening"] : []),
    ...(scenario.concurrency ? ["--concurrency", String(scenario.concurrency)] : []),
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
