/**
 * The seeded fuzz of a real server subprocess with a small `--max-message`, at any size:
 * hostile inputs per framing through the plain pair, through sessions spoken at the
 * protocol level, as raw records on `NAME.ctl` (`fuzz_driver.ts` subprocesses), and from
 * real `connect()` clients. `fuzz_test.ts` runs it small, `stress_test.ts` full size.
 *
 * After every batch: the server is still running, a well-formed client round trip works
 * (session and plain pair), it logged exactly one line per rejected stream (at most one per
 * bad write on `NAME.ctl`), and its resident memory stays bounded. At the end it exits 0 on
 * SIGTERM and leaves nothing behind.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { concatBytes } from "../lib/framing/concat_bytes.ts";
import { connect } from "../lib/session/connect.ts";
import { encodeFrame, type Framing } from "../lib/framing/framing.ts";
import { expect, type Expectation, type FuzzCase, generateCase, subSeed } from "./fuzz_cases.ts";
import {
  entries,
  fifosUnder,
  isRunning,
  memoryOf,
  type Proc,
  projectPath,
  roundTrip,
  spawn,
  startServer,
  tempDir,
} from "./helpers.ts";
import { Rng } from "./rng.ts";

/** The seed when `FUZZ_SEED` is unset: every default run tries the same cases. */
export const DEFAULT_FUZZ_SEED = 20_240_611;

/**
 * The run's seed: `FUZZ_SEED` if set (a number reproduces a run, `random` explores),
 * else {@linkcode DEFAULT_FUZZ_SEED}. FUZZ_SEED is read only where `--allow-env` is
 * granted: the card's `--allow-read --allow-write` run must load the test files (their
 * tests then report as ignored).
 */
export function fuzzSeed(): number {
  const granted = Deno.permissions.querySync({ name: "env", variable: "FUZZ_SEED" }).state ===
    "granted";
  const text = granted ? Deno.env.get("FUZZ_SEED") : undefined;
  if (text === undefined || text === "") return DEFAULT_FUZZ_SEED;
  if (text === "random") return crypto.getRandomValues(new Uint32Array(1))[0];
  const seed = Number(text);
  if (!Number.isSafeInteger(seed)) {
    throw new Error(`Invalid FUZZ_SEED "${text}": a whole number, or "random"`);
  }
  return seed;
}

/** The server's `--max-message`. */
export const MAX = 4096;
/** Resident memory allowed: the runtime's own (~60 MiB) plus a generous multiple of MAX. */
const RSS_LIMIT_KIB = 150 * 1024;

/** A driver mode and its batches: [mode, batches, cases per batch]. */
export type Batches = readonly (readonly ["plain" | "session" | "ctl", number, number])[];

/** How much one framing's fuzz does. */
export interface FuzzSize {
  /** Driver batches, in order; the checks of a batch follow each. */
  batches: Batches;
  /** `connect()` clients with a bad frame (or half a message). */
  connectCases: number;
  /** Deadline of the server and of each driver, in ms. */
  deadline: number;
}

interface DriverSummary {
  mode: string;
  cases: number;
  rejected: number;
  echoed: number;
  kinds: Record<string, number>;
  mismatches: string[];
  ms: number;
  barriersDropped?: number;
}

/** Runs one batch of the driver against the server in `dir`. */
async function drive(
  mode: "plain" | "session" | "ctl",
  dir: string,
  framing: Framing,
  seed: number,
  count: number,
  serverPid: number,
  deadline: number,
): Promise<DriverSummary> {
  await using driver = spawn(Deno.execPath(), [
    "run",
    // All: Deno lets only --allow-all read /proc/PID/fd, where the driver sees the server's
    // descriptors (see fuzz_driver.ts). It touches nothing but `dir` otherwise.
    "--allow-all",
    projectPath("tests/fuzz_driver.ts"),
    mode,
    dir,
    "pipe",
    framing,
    String(MAX),
    String(seed),
    String(count),
    String(serverPid),
  ], { deadline });
  const result = await driver.done;
  assertEquals(result.code, 0, `the ${mode} driver failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").at(-1)!);
}

/** Lines the server logged (its stderr). */
export function logLines(server: Proc): string[] {
  return server.stderr().split("\n").filter((line) => line !== "");
}

/**
 * Real `connect()` clients that send a bad frame (or half a message and leave): each bad one
 * must get the echo of what came before it, then the end of its stream.
 */
async function badConnectClients(dir: string, framing: Framing, rng: Rng, count: number) {
  let rejected = 0;
  let cases = 0;
  for (let i = 0; i < count; i++) {
    let c: FuzzCase;
    let want: Expectation;
    do {
      c = generateCase(rng, framing, MAX);
      want = expect(framing, MAX, c.bytes);
    } while (framing !== "raw" && !want.rejected && rng.chance(0.8));
    await using conn = await connect({
      dir,
      framing,
      maxMessage: MAX,
      mode: "session",
      timeout: 5000,
    });
    await conn.sendFramed(c.bytes);
    cases++;
    const got: Uint8Array[] = [];
    if (!want.rejected) {
      // Everything up to half a message (or none), then leave: the server forgets the half
      // without a word. (Leaving before the echo is read costs a "Session N ended" line.)
      for (let n = 0; n < want.echo.length;) {
        const message = await conn.receive();
        assert(message, `connect case ${i} (${c.kind}): the stream ended early`);
        got.push(encodeFrame(framing, message));
        n += got.at(-1)!.length;
      }
      assertEquals(concatBytes(got), want.echo, `connect case ${i} (${c.kind})`);
      continue;
    }
    rejected++;
    for await (const message of conn) got.push(encodeFrame(framing, message));
    assertEquals(
      concatBytes(got),
      want.echo,
      `connect case ${i} (${c.kind}): echo before the drop`,
    );
  }
  return { cases, rejected };
}

const PLAIN_LOG =
  /^Dropped a client's stream: (Message of \d+ bytes or more exceeds|Malformed|The stream ended inside a message)/;
const SESSION_LOG = /^Dropped session \d+: (Message of \d+ bytes or more exceeds|Malformed)/;
const CTL_LOG = /^(Dropped \d+ bytes on the request FIFO that are not records|Refused a session)/;

/**
 * Fuzzes a server in `framing` with `size` cases from `runSeed` (each framing, mode and
 * batch derives its own seed from it). Every failure names the seed.
 */
export async function fuzzServer(framing: Framing, runSeed: number, size: FuzzSize) {
  const seed = subSeed(runSeed, framing);
  using dir = tempDir("fuzz-");
  const server = await startServer(dir.path, [
    "--framing",
    framing,
    "--max-message",
    String(MAX),
    "--exit-word",
    "",
  ], { deadline: size.deadline });
  const pid = server.child.pid;
  const started = performance.now();
  const report = {
    plain: 0,
    session: 0,
    ctl: 0,
    connect: 0,
    rejected: 0,
    barriersDropped: 0,
    rss: { startKiB: 0, peakKiB: 0, endKiB: 0 },
  };
  let logged = 0;
  /** Checks after a batch: alive, serving, the log, the memory. */
  const afterBatch = async (label: string, rejected: number, pattern: RegExp, exact: boolean) => {
    assert(await isRunning(server), `the server died during ${label}: ${server.stderr()}`);
    await roundTrip(dir.path, `after ${label}`, { framing, maxMessage: MAX });
    const lines = logLines(server);
    const fresh = lines.slice(logged);
    logged = lines.length;
    for (const line of fresh) {
      assert(pattern.test(line), `unexpected log line after ${label}: ${line}`);
    }
    if (exact) assertEquals(fresh.length, rejected, `log lines after ${label}`);
    else assert(fresh.length <= rejected, `${fresh.length} log lines for ${rejected} bad writes`);
    const memory = await memoryOf(pid);
    assert(memory, `the server's memory after ${label}: is it gone?`);
    report.rss.peakKiB = Math.max(report.rss.peakKiB, memory.hwmKiB);
    report.rss.endKiB = memory.rssKiB;
    assert(memory.hwmKiB < RSS_LIMIT_KIB, `server peak RSS ${memory.hwmKiB} KiB after ${label}`);
  };
  try {
    report.rss.startKiB = (await memoryOf(pid))?.rssKiB ?? NaN;
    for (const [mode, batches, count] of size.batches) {
      for (let b = 0; b < batches; b++) {
        const label = `${mode} batch ${b}`;
        const batchSeed = subSeed(seed, mode, b);
        const s = await drive(mode, dir.path, framing, batchSeed, count, pid, size.deadline);
        assertEquals(s.mismatches, [], label);
        assertEquals(s.cases, count, `${label}: cases run`);
        report[mode] += s.cases;
        if (mode === "ctl") {
          report.barriersDropped += s.barriersDropped ?? 0;
          await afterBatch(label, s.rejected, CTL_LOG, false);
        } else {
          // Raw never rejects (every read is a message of at most MAX); the others must.
          assert(framing === "raw" ? s.rejected === 0 : s.rejected > count / 10, label);
          report.rejected += s.rejected;
          await afterBatch(label, s.rejected, mode === "plain" ? PLAIN_LOG : SESSION_LOG, true);
        }
      }
    }
    const rng = new Rng(subSeed(seed, "connect"));
    const c = await badConnectClients(dir.path, framing, rng, size.connectCases);
    report.connect += c.cases;
    report.rejected += c.rejected;
    await afterBatch("connect() clients", c.rejected, SESSION_LOG, true);

    server.child.kill("SIGTERM");
    const result = await server.done;
    assertEquals(result.code, 0, `exit status after SIGTERM; stderr: ${result.stderr}`);
    assertEquals(entries(dir.path), [], "left in the server's directory");
    assertEquals(fifosUnder(dir.path), []);
  } catch (error) {
    if (error instanceof Error) {
      error.message += `\n(fuzz seed ${runSeed}: rerun with FUZZ_SEED=${runSeed})`;
    }
    throw error;
  } finally {
    await server[Symbol.asyncDispose]();
  }
  const total = report.plain + report.session + report.ctl + report.connect;
  console.log(
    `fuzz ${framing}: ${total} cases (plain ${report.plain}, session ${report.session}, ` +
      `ctl ${report.ctl}, connect ${report.connect}), ${report.rejected} rejected streams, ` +
      `${report.barriersDropped} HELLOs lost to garbage in the same read, server RSS ` +
      `${report.rss.startKiB} → peak ${report.rss.peakKiB} → ${report.rss.endKiB} KiB, ` +
      `${((performance.now() - started) / 1000).toFixed(1)} s`,
  );
}
