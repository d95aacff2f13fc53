/**
 * The subprocess that feeds the seeded hostile inputs of `fuzz_cases.ts` to a live server
 * and checks every echo against the model there (run by `fuzz_scenario.ts`, and in `flood`
 * and `hold` modes by `faults_test.ts`).
 *
 *     fuzz_driver.ts plain   DIR NAME FRAMING MAX SEED COUNT SERVER_PID
 *     fuzz_driver.ts session DIR NAME FRAMING MAX SEED COUNT
 *     fuzz_driver.ts ctl     DIR NAME FRAMING MAX SEED COUNT SERVER_PID
 *     fuzz_driver.ts flood   DIR NAME FRAMING MAX SEED BYTES
 *     fuzz_driver.ts hold    DIR NAME FRAMING MAX SEED COUNT
 *
 * - `plain`: each case is one short-lived client of the plain pair (seed order: open
 *   `NAME.in` for writing, `NAME.out` for reading, write the case, close, read to end of
 *   file). Between cases the driver waits until the server holds no input end but its
 *   anchor (read from `/proc/PID/fd`), so no case's stream merges into the previous one.
 * - `session`: each case is one session spoken at the protocol level on a reused session
 *   directory: HELLO, the case as DATA records, then read until the server drops the
 *   session (a rejected case) or the whole echo has come back (then BYE).
 * - `ctl`: raw garbage and malformed records written straight on `NAME.ctl`, each batch
 *   followed, once the server has read it (its `rchar` in `/proc/PID/io`), by a
 *   well-formed HELLO as a barrier (retried when the server dropped it).
 * - `flood`: a session client that sends BYTES and never reads (until its stdin closes), so
 *   that the server must drop it.
 * - `hold`: one live client opening and ending COUNT sessions on one session directory,
 *   then holding it until its stdin closes.
 *
 * Every mode prints one JSON line: the case count, the expected rejections, the mismatches.
 * The blocking calls are deliberate: this is a subprocess with nothing else to do.
 *
 * @module
 */
import { concatBytes } from "../lib/framing/concat_bytes.ts";
import { FifoFile } from "../lib/fifo/fifo_file.ts";
import { encodeFrame, type Framing } from "../lib/framing/framing.ts";
import { encodeData } from "../lib/session/session_protocol.ts";
import {
  describeMismatch,
  expect,
  type Expectation,
  type FuzzCase,
  garbage,
  generateCase,
} from "./fuzz_cases.ts";
import { ProtocolClient, sleepMs } from "./protocol_client.ts";
import { Rng } from "./rng.ts";

function fail(message: string): never {
  throw new Error(message);
}

/** How many descriptors `pid` holds on `path`. */
function descriptorsOn(pid: number, matches: (target: string) => boolean): number {
  let count = 0;
  for (const entry of Deno.readDirSync(`/proc/${pid}/fd`)) {
    try {
      if (matches(Deno.readLinkSync(`/proc/${pid}/fd/${entry.name}`))) count++;
    } catch { /* closed meanwhile */ }
  }
  return count;
}

/** Bytes process `pid` has read so far from any file (`rchar`). */
function bytesRead(pid: number): number {
  const io = Deno.readTextFileSync(`/proc/${pid}/io`);
  return Number(io.match(/^rchar: (\d+)$/m)?.[1] ?? fail(`No rchar in /proc/${pid}/io`));
}

/** Waits until `check` holds, for at most `ms`. */
function spinUntil(check: () => boolean, ms: number, what: string): void {
  const deadline = performance.now() + ms;
  for (let wait = 0.02; !check(); wait = Math.min(wait * 2, 2)) {
    if (performance.now() > deadline) fail(`Timed out after ${ms} ms waiting for ${what}`);
    sleepMs(wait);
  }
}

interface Summary {
  mode: string;
  framing: Framing;
  cases: number;
  rejected: number;
  echoed: number;
  kinds: Record<string, number>;
  mismatches: string[];
  [key: string]: unknown;
}

/** A summary of no cases yet. */
function newSummary(mode: string, framing: Framing, extra: Record<string, number> = {}): Summary {
  return { mode, framing, cases: 0, rejected: 0, echoed: 0, kinds: {}, mismatches: [], ...extra };
}

function record(summary: Summary, index: number, c: FuzzCase, want: Expectation, got: Uint8Array) {
  summary.kinds[c.kind] = (summary.kinds[c.kind] ?? 0) + 1;
  if (want.rejected) summary.rejected++;
  summary.echoed += got.length;
  const diff = describeMismatch(want.echo, got);
  if (diff && summary.mismatches.length < 5) {
    summary.mismatches.push(`case ${index} (${c.kind}, ${c.bytes.length} bytes): ${diff}`);
  } else if (diff) summary.mismatches.push("…");
}

function readToEnd(file: FifoFile): Uint8Array {
  const parts: Uint8Array[] = [];
  const buffer = new Uint8Array(65536);
  for (;;) {
    const n = file.readSync(buffer);
    if (n === null) return concatBytes(parts);
    parts.push(buffer.slice(0, n));
  }
}

/** The command line of a fuzz batch: `COUNT` cases from `SEED` against server `PID`. */
interface Batch {
  dir: string;
  name: string;
  framing: Framing;
  max: number;
  rng: Rng;
  count: number;
  pid: number;
}

function runPlain({ dir, name, framing, max, rng, count, pid }: Batch): Summary {
  const inPath = `${dir}/${name}.in`;
  const outPath = `${dir}/${name}.out`;
  const summary = newSummary("plain", framing);
  // The server opens its FIFOs through its private links (.NAME.keep-*/in): idle, it holds
  // no descriptor on its input at all, its worker being parked in open().
  const keeperInput = new RegExp(`/\\.${name.replaceAll(".", "\\.")}\\.keep-[^/]+/in$`);
  const idle = () => descriptorsOn(pid, (t) => t === inPath || keeperInput.test(t)) === 0;
  for (let i = 0; i < count; i++) {
    const c = generateCase(rng, framing, max);
    spinUntil(idle, 10_000, "the server to finish the previous client");
    const writer = FifoFile.openSync(inPath, { access: "write" });
    const reader = FifoFile.openSync(outPath, { access: "read" });
    // Some clients leave mid-message: a half-written case is then a truncated message.
    writer.writeAllSync(c.bytes);
    writer.close();
    const got = readToEnd(reader);
    reader.close();
    record(summary, i, c, expect(framing, max, c.bytes, true), got);
    summary.cases++;
  }
  spinUntil(idle, 10_000, "the server to finish the last client");
  return summary;
}

async function runSession({ dir, name, framing, max, rng, count }: Batch): Promise<Summary> {
  using client = await ProtocolClient.open(dir, name);
  const summary = newSummary("session", framing);
  for (let i = 0; i < count; i++) {
    const c = generateCase(rng, framing, max);
    const id = client.hello(framing, 10_000) ?? fail(`case ${i}: no handshake`);
    const { records, ends } = encodeData(id, c.bytes);
    client.writeRecords(records, ends);
    const want = expect(framing, max, c.bytes);
    let got: Uint8Array;
    if (want.rejected) {
      got = client.readReplies(undefined, 10_000); // the server drops the session
    } else {
      got = client.readReplies(want.echo.length, 10_000);
      const extra = client.bye(id);
      if (extra.length) got = concatBytes([got, extra]);
    }
    record(summary, i, c, want, got);
    summary.cases++;
  }
  return summary;
}

async function runCtl({ dir, name, framing, rng, count, pid }: Batch): Promise<Summary> {
  // A HELLO that went unanswered may still be answered late: each retry uses a fresh
  // session directory, and the old ones stay open until the end so nothing lands astray.
  const clients = [await ProtocolClient.open(dir, name)];
  const summary = newSummary("ctl", framing, { barriers: 0, barriersDropped: 0 });
  // The server reads little else meanwhile (the test waits for this process), so its
  // rchar passing what we wrote on NAME.ctl means it has read all of that.
  const readBefore = bytesRead(pid);
  const written = () => clients.reduce((n, client) => n + client.ctlBytes, 0);
  try {
    const batch = 25;
    for (let i = 0; i < count;) {
      let client = clients.at(-1)!;
      for (const end = Math.min(count, i + batch); i < end; i++) {
        const g = garbage(rng, dir, name);
        summary.kinds[g.kind] = (summary.kinds[g.kind] ?? 0) + 1;
        if (g.logs) summary.rejected++;
        client.writeCtl(g.bytes);
        summary.cases++;
      }
      // Barrier: once our HELLO is answered, every byte written before it has been read. A
      // HELLO that shares a read with garbage is dropped with it: send it once the server
      // has read the garbage, and should it still be dropped, retry and count that.
      spinUntil(() => bytesRead(pid) - readBefore >= written(), 10_000, "the server to read");
      let id: number | undefined;
      for (let attempt = 0; (id = client.hello(framing, 2000)) === undefined; attempt++) {
        summary.barriersDropped = (summary.barriersDropped as number) + 1;
        if (attempt === 5) fail("The server answers no HELLO after garbage on the request FIFO");
        clients.push(client = await ProtocolClient.open(dir, name));
      }
      summary.barriers = (summary.barriers as number) + 1;
      // A well-formed echo through the session, so "keeps serving" is checked per batch.
      const probe = encodeFrame(framing, new TextEncoder().encode("probe"));
      const { records, ends } = encodeData(id, probe);
      client.writeRecords(records, ends);
      const got = client.readReplies(probe.length, 10_000);
      const extra = client.bye(id);
      const diff = describeMismatch(probe, concatBytes([got, extra]));
      if (diff) summary.mismatches.push(`probe after garbage batch ${summary.barriers}: ${diff}`);
    }
  } finally {
    for (const client of clients) client[Symbol.dispose]();
  }
  return summary;
}

/**
 * A session client that never reads: floods `bytes` of well-formed messages, says so, then
 * waits for its standard input to close and only then reads its reply FIFO to the end.
 */
async function runFlood(dir: string, name: string, framing: Framing, bytes: number) {
  using client = await ProtocolClient.open(dir, name);
  const id = client.hello(framing, 10_000) ?? fail("no handshake");
  const line = new Uint8Array(1024).fill(0x78);
  if (framing === "lines") line[1023] = 10;
  if (framing === "length") new DataView(line.buffer).setUint32(0, 1020);
  const chunk = new Uint8Array(64 * 1024);
  for (let at = 0; at < chunk.length; at += 1024) chunk.set(line, at);
  let sent = 0;
  for (; sent < bytes; sent += chunk.length) {
    const { records, ends } = encodeData(id, chunk);
    client.writeRecords(records, ends);
  }
  console.log(JSON.stringify({ mode: "flood", id, sent }));
  // Blocks this thread until the test closes our stdin: we read nothing meanwhile.
  while (Deno.stdin.readSync(new Uint8Array(64)) !== null) { /* wait */ }
  const received = client.readReplies(undefined, 10_000).length;
  return { mode: "flood", framing, id, sent, received, eof: true };
}

/**
 * One client, one session directory, many sessions: HELLO then BYE up to `count` times (or
 * until a HELLO goes unanswered), then it holds its directory open until stdin closes.
 */
async function runHold(dir: string, name: string, framing: Framing, count: number) {
  using client = await ProtocolClient.open(dir, name);
  let made = 0;
  for (; made < count; made++) {
    const id = client.hello(framing, 2000);
    if (id === undefined) break;
    client.bye(id);
  }
  console.log(JSON.stringify({ mode: "hold", made }));
  while (Deno.stdin.readSync(new Uint8Array(64)) !== null) { /* hold */ }
  return { mode: "hold", made };
}

/** The checked modes, by name. */
const BATCH_MODES: Record<string, (batch: Batch) => Summary | Promise<Summary>> = {
  plain: runPlain,
  session: runSession,
  ctl: runCtl,
};

async function main(args: string[]): Promise<void> {
  const [mode, dir, name, framing, max, seed, count, pid] = args;
  const f = framing as Framing;
  const start = performance.now();
  if (mode === "flood") {
    console.log(JSON.stringify(await runFlood(dir, name, f, Number(count))));
    return;
  }
  if (mode === "hold") {
    await runHold(dir, name, f, Number(count));
    return;
  }
  const run = Object.hasOwn(BATCH_MODES, mode) ? BATCH_MODES[mode] : fail(`Unknown mode "${mode}"`);
  const summary = await run({
    dir,
    name,
    framing: f,
    max: Number(max),
    rng: new Rng(Number(seed)),
    count: Number(count),
    pid: Number(pid),
  });
  summary.ms = Math.round(performance.now() - start);
  console.log(JSON.stringify(summary));
}

if (import.meta.main) await main(Deno.args);
