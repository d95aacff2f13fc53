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
 *   idle connection; closes them all and prints a JSON summary. With `--listening`, every
 *   idle connection keeps a receive pending all along, as a `for await` over its
 *   `readable` would: more than Deno's 32 blocking threads if each parked a read.
 * - `stall`: sends one `--size` message and never reads the echo; prints `{"stalled":true}`
 *   and waits (at most `--linger` ms) to be killed.
 *
 * Exits 0 when every check passed, 1 on any mismatch or error (printed to stderr).
 *
 * The parent side (running drivers against a server and checking their summaries) is
 * `session_scenarios.ts`; the messages are `message_source.ts`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { connect, type ConnectOptions, type FifoConn } from "../lib/session/connect.ts";
import type { Framing } from "../lib/framing/framing.ts";
import { sessionPrefix } from "../lib/session/session_protocol.ts";
import { CONNECTION_OPTIONS } from "./driver_options.ts";
import { firstDifference } from "./first_difference.ts";
import { MessageSource, type SizeDistribution } from "./message_source.ts";

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
      // --concurrency at a time: each connect parks an open and a read until the server
      // answers, which it does without help from this process, so they only queue.
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
    // Caught at once, thrown when awaited: a timeout here must not end the process early.
    const listening = values.listening
      ? idle.map((conn) =>
        conn.receive({ timeout: Infinity }).then((got) => ({ got }), (error) => ({ error }))
      )
      : undefined;

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
      const probe = new TextEncoder().encode("still here");
      for (const [i, conn] of idle.entries()) {
        await conn.send(probe);
        if (!listening) {
          await expectEcho(conn, probe, idleChecked++, timeout);
          continue;
        }
        const result = await listening[i];
        if ("error" in result) throw result.error;
        if (result.got === null) fail(`The server ended idle session #${i}`);
        const at = firstDifference(result.got, probe);
        if (at >= 0) fail(`Idle session #${i}'s echo differs at byte ${at}`);
        idleChecked++;
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
        ...CONNECTION_OPTIONS,
        mode: { type: "string", default: "session" },
        count: { type: "string", default: "100" },
        "max-size": { type: "string", default: String(256 * 1024) },
        dist: { type: "string", default: "uniform" },
        progress: { type: "string", default: "0" },
        idle: { type: "string", default: "0" },
        rounds: { type: "string", default: "100" },
        concurrency: { type: "string", default: "8" },
        "check-idle": { type: "boolean", default: false },
        listening: { type: "boolean", default: false },
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

if (import.meta.main) Deno.exit(await main(Deno.args));
