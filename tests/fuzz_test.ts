/**
 * Seeded fuzz of a real server subprocess with a small `--max-message`: thousands of
 * hostile inputs per framing through the plain pair, through sessions spoken at the
 * protocol level, as raw records on `NAME.ctl`, and from real `connect()` clients.
 *
 * After every batch: the server is still running, a well-formed client round trip works
 * (session and plain pair), it logged exactly one line per rejected stream (at most one per
 * bad write on `NAME.ctl`), and its resident memory stays bounded. At the end it exits 0 on
 * SIGTERM and leaves nothing behind.
 *
 * Reproduce a run with `FUZZ_SEED=<seed>` (printed at the start and in every failure).
 *
 * @module
 */
import { concatBytes } from "../lib/concat_bytes.ts";
import { deepStrictEqual as assertEquals, ok as assert } from "node:assert/strict";
import { connect } from "../lib/connect.ts";
import { FifoFile } from "../lib/fifo_file.ts";
import { encodeFrame, type Framing, FRAMINGS } from "../lib/framing.ts";
import { encodeRecord, RecordType } from "../lib/session_protocol.ts";
import { expect, type FuzzCase, generateCase, subSeed } from "./fuzz_cases.ts";
import { Rng } from "./rng.ts";
import {
  entries,
  fifosUnder,
  isRunning,
  memoryOf,
  type Proc,
  projectPath,
  requires,
  spawn,
  startServer,
  tempDir,
  waitUntil,
} from "./helpers.ts";

const test = requires("--allow-run");

// FUZZ_SEED is read only where --allow-env is granted: the card's `--allow-read
// --allow-write` run must load this file (its tests then report as ignored).
const seedText = Deno.permissions.querySync({ name: "env", variable: "FUZZ_SEED" }).state ===
    "granted"
  ? Deno.env.get("FUZZ_SEED")
  : undefined;
const SEED = seedText !== undefined
  ? Number(seedText)
  : crypto.getRandomValues(new Uint32Array(1))[0];
if (!Number.isSafeInteger(SEED)) {
  throw new Error(`Invalid FUZZ_SEED "${seedText}"`);
}
console.log(`fuzz seed: ${SEED} (set FUZZ_SEED=${SEED} to reproduce)`);

const MAX = 4096;
/** Resident memory allowed: the runtime's own (~60 MiB) plus a generous multiple of MAX. */
const RSS_LIMIT_KIB = 150 * 1024;
/** Driver batches per framing: [mode, batches, cases per batch]. A round trip follows each. */
const BATCHES = [["plain", 4, 1500], ["session", 2, 1000], ["ctl", 2, 300]] as const;
const CONNECT_CASES = 40;

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
  ], { deadline: 40_000 });
  const result = await driver.done;
  assertEquals(result.code, 0, `the ${mode} driver failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split("\n").at(-1)!);
}

/** One well-formed exchange, through a session and through the plain pair. */
async function roundTrip(dir: string, framing: Framing, label: string): Promise<void> {
  for (const mode of ["session", "shared"] as const) {
    await using conn = await connect({ dir, framing, maxMessage: MAX, mode, timeout: 5000 });
    const text = `ok ${label} ${mode}`;
    await conn.send(text);
    const reply = await conn.receive();
    assertEquals(
      reply && new TextDecoder().decode(reply),
      text,
      `round trip (${mode}) after ${label}`,
    );
  }
}

/** Lines the server logged (its stderr). */
function logLines(server: Proc): string[] {
  return server.stderr().split("\n").filter((line) => line !== "");
}

/**
 * Real `connect()` clients that send a bad frame (or half a message and leave): each bad one
 * must get the echo of what came before it, then the end of its stream.
 */
async function badConnectClients(dir: string, framing: Framing, rng: Rng) {
  let rejected = 0;
  let cases = 0;
  for (let i = 0; i < CONNECT_CASES; i++) {
    let c: FuzzCase;
    let want: ReturnType<typeof expect>;
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

for (const framing of FRAMINGS) {
  test(`fuzz: ${framing} framing, hostile input through every door`, async () => {
    const seed = subSeed(SEED, framing);
    using dir = tempDir("fuzz-");
    const server = await startServer(dir.path, [
      "--framing",
      framing,
      "--max-message",
      String(MAX),
      "--exit-word",
      "",
    ], { deadline: 55_000 });
    const pid = server.child.pid;
    const started = performance.now();
    const report = {
      framing,
      seed: SEED,
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
      await roundTrip(dir.path, framing, label);
      const lines = logLines(server);
      const fresh = lines.slice(logged);
      logged = lines.length;
      for (const line of fresh) {
        assert(pattern.test(line), `unexpected log line after ${label}: ${line}`);
      }
      if (exact) assertEquals(fresh.length, rejected, `log lines after ${label}`);
      else assert(fresh.length <= rejected, `${fresh.length} log lines for ${rejected} bad writes`);
      const memory = await memoryOf(pid);
      report.rss.peakKiB = Math.max(report.rss.peakKiB, memory.hwm);
      report.rss.endKiB = memory.rss;
      assert(memory.hwm < RSS_LIMIT_KIB, `server peak RSS ${memory.hwm} KiB after ${label}`);
    };
    try {
      try {
        report.rss.startKiB = (await memoryOf(pid)).rss;
        for (const [mode, batches, count] of BATCHES) {
          for (let b = 0; b < batches; b++) {
            const label = `${mode} batch ${b}`;
            const s = await drive(mode, dir.path, framing, subSeed(seed, mode, b), count, pid);
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
        const c = await badConnectClients(dir.path, framing, new Rng(subSeed(seed, "connect")));
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
          error.message += `\n(fuzz seed ${SEED}: rerun with FUZZ_SEED=${SEED})`;
        }
        throw error;
      }
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
  });
}

// ------------------------------------------- regressions: bugs this suite found, now fixed

/** Writes raw bytes on the server's request FIFO, as any process of the same user can. */
function writeControl(dir: string, bytes: Uint8Array): void {
  using control = FifoFile.openSync(`${dir}/pipe.ctl`, { access: "write", nonblocking: true });
  control.writeAllSync(bytes);
}

const hello = (value: unknown) =>
  encodeRecord(RecordType.HELLO, 0, new TextEncoder().encode(JSON.stringify(value)));

test({
  name: "fuzz regression: a HELLO whose JSON is null is refused, not fatal",
  // Regression (found here, fixed in 179edc7): SessionHub#accept read `hello.v` of the
  // JSON.parse result unchecked; the payload `null` threw out of the request loop and the
  // server died (exit 2).
  async fn() {
    using dir = tempDir("fuzz-regression-");
    await using server = await startServer(dir.path);
    writeControl(dir.path, hello(null));
    await waitUntil(() => logLines(server).length > 0 || server.stderr() !== "", 5000, "a log");
    await new Promise((r) => setTimeout(r, 300));
    assert(await isRunning(server), `the server died: ${server.stderr()}`);
    await roundTrip(dir.path, "lines", "a null HELLO");
    assertEquals(logLines(server).length, 1, server.stderr());
  },
});

test({
  name: "fuzz regression: a HELLO cannot forge log lines",
  // Regression (found here, fixed in 179edc7): refusals logged the client's `dir`, `v` and
  // `framing` as they were; a newline in `dir` wrote a second, forged log line.
  async fn() {
    using dir = tempDir("fuzz-regression-");
    await using server = await startServer(dir.path);
    writeControl(
      dir.path,
      hello({
        v: 1,
        framing: "lines",
        dir: `${dir.path}/pipe.session-x\nDropped session 7: forged`,
      }),
    );
    await waitUntil(() => logLines(server).length > 0, 5000, "a log line");
    await new Promise((r) => setTimeout(r, 300));
    assertEquals(logLines(server).length, 1, `one input, one log line: ${server.stderr()}`);
  },
});

test({
  name: "fuzz regression: stray bytes on NAME.ctl do not swallow another client's records",
  // Regression (found here, fixed in 179edc7): parseRecords dropped everything from the
  // first non-record byte to the end of the read, so records other clients wrote right
  // after stray bytes vanished with them (a DATA never answered, a HELLO timed out).
  // Deterministic: the server is stopped while both are written.
  async fn() {
    using dir = tempDir("fuzz-regression-");
    await using server = await startServer(dir.path);
    await using conn = await connect({ dir: dir.path, mode: "session", timeout: 3000 });
    await conn.send("before");
    assertEquals(new TextDecoder().decode((await conn.receive())!), "before");
    server.child.kill("SIGSTOP");
    try {
      writeControl(dir.path, new TextEncoder().encode("stray bytes\n"));
      await conn.send("after");
    } finally {
      server.child.kill("SIGCONT");
    }
    const reply = await conn.receive({ timeout: 3000 });
    assertEquals(reply && new TextDecoder().decode(reply), "after");
  },
});

test({
  name: "fuzz regression: connect() in raw framing with maxMessage below 64 KiB",
  // Regression (found here, fixed in 179edc7): FifoConn read replies into a fixed 64 KiB
  // buffer and, in raw framing, every read is one message checked against maxMessage:
  // with maxMessage 4096, 10000 bytes of echo arriving together made receive() throw.
  async fn() {
    using dir = tempDir("fuzz-regression-");
    await using _server = await startServer(dir.path, ["--framing", "raw"]);
    for (const mode of ["session", "shared"] as const) {
      await using conn = await connect({ dir: dir.path, framing: "raw", maxMessage: 4096, mode });
      await conn.send(new Uint8Array(10000).fill(0x61));
      await new Promise((r) => setTimeout(r, 200)); // let the whole echo arrive
      for (let got = 0; got < 10000;) {
        const message = await conn.receive();
        assert(message && message.length <= 4096, `${mode}: message of ${message?.length}`);
        got += message.length;
      }
    }
  },
});
