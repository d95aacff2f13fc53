/**
 * The seeded fuzz (`fuzz_scenario.ts`) at a size for every run: a few hundred hostile
 * inputs per framing through every door, with every check of the full-size fuzz that
 * `stress_test.ts` runs. Then the regressions the fuzz found.
 *
 * The seed is fixed, so every run tries the same cases: `FUZZ_SEED=random` explores,
 * `FUZZ_SEED=<seed>` (printed at the start and in every failure) reproduces.
 *
 * @module
 */
import {
  deepStrictEqual as assertEquals,
  match as assertMatch,
  ok as assert,
} from "node:assert/strict";
import { connect } from "../lib/session/connect.ts";
import { FifoFile } from "../lib/fifo/fifo_file.ts";
import { FRAMINGS } from "../lib/framing/framing.ts";
import { encodeRecord, RecordType } from "../lib/session/session_protocol.ts";
import { fuzzSeed, fuzzServer, type FuzzSize, logLines } from "./fuzz_scenario.ts";
import { isRunning, requires, roundTrip, startServer, tempDir, waitUntil } from "./helpers.ts";
// What the kernel says of the server: /proc counters, thread and process states.
import * as kernel from "../tools/proc_files.ts";

const test = requires("--allow-run");

const SEED = fuzzSeed();
console.log(`fuzz seed: ${SEED} (FUZZ_SEED=${SEED} reproduces, FUZZ_SEED=random explores)`);

/**
 * One batch per door, enough cases for every ending kind of every framing to come up
 * (the batch checks require more than a tenth of the streams rejected).
 */
const SHORT: FuzzSize = {
  batches: [["plain", 1, 300], ["session", 1, 200], ["ctl", 1, 100]],
  connectCases: 20,
  deadline: 55_000,
};

for (const framing of FRAMINGS) {
  test(`fuzz: ${framing} framing, hostile input through every door`, async () => {
    await fuzzServer(framing, SEED, SHORT);
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
    await waitUntil(() => server.stderr() !== "", 5000, "a log line");
    // The round trip's HELLO comes after the null one on the same FIFO: answered, it shows
    // the request loop lived through the null one.
    await roundTrip(dir.path, "after a null HELLO");
    assert(await isRunning(server), `the server died: ${server.stderr()}`);
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
    // A marker with a known log line of its own: whatever the HELLO logged comes before it.
    writeControl(dir.path, new TextEncoder().encode("marker\n"));
    const marker = "Dropped 7 bytes on the request FIFO that are not records";
    await waitUntil(() => logLines(server).includes(marker), 5000, "the marker's log line");
    const lines = logLines(server);
    assertEquals(lines.length, 2, `one input, one log line: ${server.stderr()}`);
    assertMatch(lines[0], /^Refused a session for /);
    assertEquals(lines[1], marker);
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
      await kernel.waitForStopped(server.child.pid, "the server to stop");
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
    await using server = await startServer(dir.path, ["--framing", "raw"]);
    const pid = server.child.pid;
    for (const mode of ["session", "shared"] as const) {
      await using conn = await connect({ dir: dir.path, framing: "raw", maxMessage: 4096, mode });
      const { written } = await kernel.ioOf(pid);
      await conn.send(new Uint8Array(10000).fill(0x61));
      // The whole echo waits in the pipe before the first read: the server wrote it all.
      await kernel.waitForProc(
        pid,
        "io",
        ([io]) => kernel.procField(io, "wchar") >= written + 10000,
        "the server to write the whole echo",
      );
      for (let got = 0; got < 10000;) {
        const message = await conn.receive();
        assert(message && message.length <= 4096, `${mode}: message of ${message?.length}`);
        got += message.length;
      }
    }
  },
});
