/**
 * The hostile half of `fuzz_test.ts`: a seeded generator of bad inputs, the model of what
 * the server must echo for each, and a subprocess driver that feeds them to a live server.
 *
 *     fuzz_driver.ts plain   DIR NAME FRAMING MAX SEED COUNT SERVER_PID
 *     fuzz_driver.ts session DIR NAME FRAMING MAX SEED COUNT
 *     fuzz_driver.ts ctl     DIR NAME FRAMING MAX SEED COUNT
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
 *   followed by a well-formed HELLO as a barrier (retried when the server dropped it).
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
import { concatBytes } from "../lib/concat_bytes.ts";
import { FifoFile, PIPE_BUF } from "../lib/fifo_file.ts";
import type { Framing } from "../lib/framing.ts";
import { makeFifo, removeFifo } from "../lib/make_fifo.ts";
import {
  encodeData,
  encodeRecord,
  MAX_RECORD_PAYLOAD,
  RecordType,
  sessionPrefix,
} from "../lib/session_protocol.ts";

/** A small, fast, seedable PRNG (mulberry32). */
export class Rng {
  #state: number;
  constructor(seed: number) {
    this.#state = seed >>> 0;
  }
  /** A uniform 32-bit unsigned integer. */
  u32(): number {
    let t = (this.#state = (this.#state + 0x6d2b79f5) >>> 0);
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (t ^ (t >>> 14)) >>> 0;
  }
  /** A whole number in `[lo, hi]`. */
  int(lo: number, hi: number): number {
    return lo + Math.floor((this.u32() / 2 ** 32) * (hi - lo + 1));
  }
  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.u32() / 2 ** 32 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.int(0, items.length - 1)];
  }
}

/** Derives the seed of one batch from the run's seed, so each batch reproduces alone. */
export function subSeed(seed: number, ...labels: (string | number)[]): number {
  let h = seed >>> 0;
  for (const char of labels.join("/")) h = Math.imul(h ^ char.charCodeAt(0), 0x01000193) >>> 0;
  return h;
}

const INVALID_UTF8 = [
  [0xff],
  [0xfe],
  [0xc0, 0x80], // overlong NUL
  [0xed, 0xa0, 0x80], // a UTF-16 surrogate
  [0xf4, 0x90, 0x80, 0x80], // beyond U+10FFFF
  [0xe2, 0x82], // truncated sequence
  [0x80],
];

/** Payload bytes of `length`, in one of several hostile flavours; never `\n` if `noNewline`. */
function payload(rng: Rng, length: number, noNewline: boolean): Uint8Array {
  const bytes = new Uint8Array(length);
  const flavour = rng.int(0, 4);
  for (let i = 0; i < length;) {
    if (flavour === 3 && rng.chance(0.05)) {
      for (const b of rng.pick(INVALID_UTF8)) if (i < length) bytes[i++] = b;
      continue;
    }
    let b: number;
    if (flavour === 0) b = 97 + rng.int(0, 25); // text
    else if (flavour === 1) b = rng.int(0, 255); // anything
    else if (flavour === 2) b = rng.chance(0.5) ? 0 : rng.int(1, 255); // NUL-heavy
    else b = 32 + rng.int(0, 94);
    if (noNewline && b === 0x0a) b = 0x0b;
    bytes[i++] = b;
  }
  return bytes;
}

function header(length: number): Uint8Array {
  const bytes = new Uint8Array(4);
  new DataView(bytes.buffer).setUint32(0, length);
  return bytes;
}

/** One generated input and its label (for the failure message). */
export interface FuzzCase {
  kind: string;
  bytes: Uint8Array;
}

/**
 * Generates one hostile input for `framing` with the server's `max`: a few well-formed
 * messages (some exactly `max`), then one of the bad endings the issue lists. Inputs stay
 * under 48 KiB so their echo always fits in a pipe.
 */
export function generateCase(rng: Rng, framing: Framing, max: number): FuzzCase {
  const good = (): Uint8Array => {
    const length = rng.chance(0.1) ? max : rng.int(0, Math.min(max, rng.chance(0.7) ? 64 : max));
    if (framing === "lines") return concatBytes([payload(rng, length, true), new Uint8Array([10])]);
    if (framing === "length") return concatBytes([header(length), payload(rng, length, false)]);
    return payload(rng, Math.max(1, length), false);
  };
  const parts: Uint8Array[] = [];
  const lead = rng.chance(0.3) ? 0 : rng.int(1, 4);
  for (let i = 0; i < lead; i++) parts.push(good());
  let kind: string;
  if (rng.chance(0.15)) {
    kind = "random bytes";
    parts.push(payload(rng, rng.int(1, 3 * max), false));
  } else if (framing === "lines") {
    kind = rng.pick([
      "good only",
      "half a line, then close",
      "line longer than max",
      "unterminated line longer than max",
      "line of max+1",
    ]);
    if (kind === "half a line, then close") parts.push(payload(rng, rng.int(1, max), true));
    if (kind === "line longer than max") {
      parts.push(payload(rng, rng.int(max + 1, 3 * max), true), new Uint8Array([10]), good());
    }
    if (kind === "unterminated line longer than max") {
      parts.push(payload(rng, rng.int(max + 1, 3 * max), true));
    }
    if (kind === "line of max+1") parts.push(payload(rng, max + 1, true), new Uint8Array([10]));
  } else if (framing === "length") {
    kind = rng.pick([
      "good only",
      "truncated header",
      "lone header, no payload",
      "header with half its payload",
      "oversized length header",
      "length header >= 2^31",
      "header of max+1",
    ]);
    if (kind === "truncated header") parts.push(payload(rng, rng.int(1, 3), false));
    if (kind === "lone header, no payload") parts.push(header(rng.int(1, max)));
    if (kind === "header with half its payload") {
      const length = rng.int(2, max);
      parts.push(header(length), payload(rng, rng.int(1, length - 1), false));
    }
    if (kind === "oversized length header") {
      parts.push(header(rng.int(max + 1, 0x7fffffff)), payload(rng, rng.int(0, max), false));
    }
    if (kind === "length header >= 2^31") {
      parts.push(header(rng.int(0x80000000, 0xffffffff)), payload(rng, rng.int(0, 64), false));
    }
    if (kind === "header of max+1") parts.push(header(max + 1), payload(rng, max + 1, false));
  } else {
    kind = rng.pick(["good only", "raw message of max", "raw write of 3*max", "NUL run"]);
    if (kind === "raw message of max") parts.push(payload(rng, max, false));
    if (kind === "raw write of 3*max") parts.push(payload(rng, 3 * max, false));
    if (kind === "NUL run") parts.push(new Uint8Array(rng.int(1, max)));
  }
  return { kind, bytes: concatBytes(parts) };
}

/** What the server must do with one client's whole stream. */
export interface Expectation {
  /** The exact bytes echoed back. */
  echo: Uint8Array;
  /** Whether the stream is rejected (one log line, the rest dropped). */
  rejected: boolean;
}

/**
 * The model: the echo of every complete, acceptable message before the first oversized or
 * malformed one; a trailing partial message is dropped silently. `raw` never rejects: the
 * server reads at most `max` bytes at a time, and every read is one message.
 */
export function expect(
  framing: Framing,
  max: number,
  input: Uint8Array,
  endOfStream = false,
): Expectation {
  if (framing === "raw") return { echo: input, rejected: false };
  let at = 0;
  if (framing === "lines") {
    for (;;) {
      const nl = input.indexOf(10, at);
      const length = (nl < 0 ? input.length : nl) - at;
      if (length > max) return { echo: input.subarray(0, at), rejected: true };
      // At the end of a plain client's stream a last line without "\n" is a message.
      if (nl < 0) {
        return { echo: input.subarray(0, endOfStream ? input.length : at), rejected: false };
      }
      at = nl + 1;
    }
  }
  const view = new DataView(input.buffer, input.byteOffset, input.byteLength);
  while (input.length - at >= 4) {
    const length = view.getUint32(at);
    if (length > max) return { echo: input.subarray(0, at), rejected: true };
    if (input.length - at - 4 < length) break;
    at += 4 + length;
  }
  // An unfinished frame at the end of a plain client's stream is refused with a log line.
  return { echo: input.subarray(0, at), rejected: endOfStream && at < input.length };
}

/** Compares an echo with the model's; returns a description of the first difference. */
export function describeMismatch(want: Uint8Array, got: Uint8Array): string | undefined {
  const n = Math.min(want.length, got.length);
  for (let i = 0; i < n; i++) {
    if (want[i] !== got[i]) return `byte ${i} differs (want ${want[i]}, got ${got[i]})`;
  }
  if (want.length !== got.length) return `echo of ${got.length} bytes, want ${want.length}`;
}

// ---------------------------------------------------------------------------- driver

const sleeper = new Int32Array(new SharedArrayBuffer(4));
function sleepMs(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

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

function runPlain(
  dir: string,
  name: string,
  framing: Framing,
  max: number,
  rng: Rng,
  count: number,
  pid: number,
) {
  const inPath = `${dir}/${name}.in`;
  const outPath = `${dir}/${name}.out`;
  const summary: Summary = {
    mode: "plain",
    framing,
    cases: 0,
    rejected: 0,
    echoed: 0,
    kinds: {},
    mismatches: [],
  };
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

/** A session directory of our own that we reuse for many sessions in a row. */
export class ProtocolClient implements Disposable {
  readonly dir: string;
  readonly reply: FifoFile;
  readonly alive: FifoFile;
  readonly ctl: FifoFile;
  #made: [string, Deno.FileInfo][];
  #handshakeTail: Uint8Array = new Uint8Array(0);

  private constructor(dir: string, made: [string, Deno.FileInfo][], files: FifoFile[]) {
    this.dir = dir;
    this.#made = made;
    [this.alive, this.reply, this.ctl] = files;
  }

  static async open(dir: string, name: string): Promise<ProtocolClient> {
    const sessionDir = Deno.makeTempDirSync({ dir, prefix: sessionPrefix(name) });
    Deno.chmodSync(sessionDir, 0o700);
    const made: [string, Deno.FileInfo][] = [];
    for (const file of ["reply", "alive"]) {
      made.push([`${sessionDir}/${file}`, await makeFifo(`${sessionDir}/${file}`)]);
    }
    const files = [
      FifoFile.openSync(`${sessionDir}/alive`, { access: "readwrite" }),
      FifoFile.openSync(`${sessionDir}/reply`, { access: "read", nonblocking: true }),
      FifoFile.openSync(`${dir}/${name}.ctl`, { access: "write", nonblocking: true }),
    ];
    return new ProtocolClient(sessionDir, made, files);
  }

  /** Writes bytes on the request FIFO, waiting while it is full. */
  writeCtl(bytes: Uint8Array): void {
    for (let done = 0; done < bytes.length;) {
      const n = this.ctl.tryWrite(bytes.subarray(done));
      done += n;
      if (!n) sleepMs(0.2);
    }
  }

  /** Writes packed records in atomic pieces that end on record boundaries. */
  writeRecords(records: Uint8Array, ends: number[]): void {
    let start = 0;
    for (let i = 0; i < ends.length;) {
      let end = ends[i++];
      while (i < ends.length && ends[i] - start <= PIPE_BUF) end = ends[i++];
      const piece = records.subarray(start, end);
      while (this.ctl.tryWrite(piece) === 0) sleepMs(0.2);
      start = end;
    }
  }

  /**
   * Sends a HELLO and waits up to `ms` for the handshake.
   *
   * @returns The session id, or `undefined` when no answer came (the HELLO was dropped).
   */
  hello(framing: Framing, ms: number): number | undefined {
    const body = new TextEncoder().encode(JSON.stringify({ v: 1, dir: this.dir, framing }));
    this.writeCtl(encodeRecord(RecordType.HELLO, 0, body));
    const buffer = new Uint8Array(PIPE_BUF);
    let got: Uint8Array = new Uint8Array(0);
    const deadline = performance.now() + ms;
    for (let wait = 0.02;; wait = Math.min(wait * 2, 2)) {
      const n = this.reply.readSync(buffer);
      if (n) {
        got = concatBytes([got, buffer.subarray(0, n)]);
        const nl = got.indexOf(10);
        if (nl >= 0) {
          const answer = JSON.parse(new TextDecoder().decode(got.subarray(0, nl)));
          if (typeof answer.id !== "number") fail(`Handshake refused: ${JSON.stringify(answer)}`);
          this.#handshakeTail = got.slice(nl + 1);
          return answer.id;
        }
        continue;
      }
      if (performance.now() > deadline) return undefined;
      sleepMs(wait);
    }
  }

  /** Reads replies until `want` bytes arrived, or until end of file when `want` is omitted. */
  readReplies(want: number | undefined, ms: number): Uint8Array {
    const parts = [this.#handshakeTail];
    this.#handshakeTail = new Uint8Array(0);
    let total = parts[0].length;
    const buffer = new Uint8Array(65536);
    const deadline = performance.now() + ms;
    for (let wait = 0.02; want === undefined || total < want; wait = Math.min(wait * 2, 2)) {
      const n = this.reply.readSync(buffer);
      if (n === null) break;
      if (n) {
        parts.push(buffer.slice(0, n));
        total += n;
        wait = 0.01;
        continue;
      }
      if (performance.now() > deadline) {
        fail(`Timed out after ${ms} ms with ${total} reply bytes, want ${want ?? "end of file"}`);
      }
      sleepMs(wait);
    }
    return concatBytes(parts);
  }

  /** Ends session `id` and waits for the server to close its end. */
  bye(id: number): Uint8Array {
    this.writeCtl(encodeRecord(RecordType.BYE, id, new Uint8Array(0)));
    return this.readReplies(undefined, 10_000);
  }

  [Symbol.dispose](): void {
    for (const file of [this.alive, this.reply, this.ctl]) file.close();
    for (const [path, info] of this.#made) removeFifo(path, info);
    Deno.removeSync(this.dir);
  }
}

async function runSession(
  dir: string,
  name: string,
  framing: Framing,
  max: number,
  rng: Rng,
  count: number,
) {
  using client = await ProtocolClient.open(dir, name);
  const summary: Summary = {
    mode: "session",
    framing,
    cases: 0,
    rejected: 0,
    echoed: 0,
    kinds: {},
    mismatches: [],
  };
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

/** One malformed write for the request FIFO, and whether the server should log it. */
function garbage(
  rng: Rng,
  dir: string,
  name: string,
): { kind: string; bytes: Uint8Array; logs: boolean } {
  const fields = (type: number, id: number, length: number, reserved = 0, magic = 0xf1f0) => {
    const bytes = new Uint8Array(12);
    const view = new DataView(bytes.buffer);
    view.setUint16(0, magic);
    view.setUint8(2, type);
    view.setUint8(3, reserved);
    view.setUint32(4, id);
    view.setUint16(8, length);
    return bytes;
  };
  const json = (value: unknown) => new TextEncoder().encode(JSON.stringify(value));
  const hello = (body: Uint8Array) => encodeRecord(RecordType.HELLO, 0, body);
  const prefix = sessionPrefix(name);
  switch (rng.int(0, 14)) {
    case 0:
      return {
        kind: "random bytes",
        bytes: payload(rng, rng.int(1, 3 * PIPE_BUF), false),
        logs: true,
      };
    case 1:
      return {
        kind: "short header",
        bytes: fields(2, 1, 0).subarray(0, rng.int(1, 11)),
        logs: true,
      };
    case 2:
      return {
        kind: "bad magic",
        bytes: concatBytes([fields(2, 1, 8, 0, rng.int(0, 0xf1ef)), new Uint8Array(8)]),
        logs: true,
      };
    case 3:
      return {
        kind: "reserved byte set",
        bytes: concatBytes([fields(2, 1, 4, rng.int(1, 255)), new Uint8Array(4)]),
        logs: true,
      };
    case 4:
      return {
        kind: "record length > 4084",
        bytes: concatBytes([
          fields(2, 1, rng.int(MAX_RECORD_PAYLOAD + 1, 0xffff)),
          new Uint8Array(64),
        ]),
        logs: true,
      };
    case 5: {
      const length = rng.int(2, MAX_RECORD_PAYLOAD);
      return {
        kind: "truncated record",
        bytes: concatBytes([fields(2, 1, length), new Uint8Array(rng.int(0, length - 1))]),
        logs: true,
      };
    }
    case 6:
      return {
        kind: "HELLO, not JSON",
        bytes: hello(payload(rng, rng.int(0, 200), false)),
        logs: true,
      };
    case 7:
      return {
        kind: "HELLO, JSON of the wrong shape",
        bytes: hello(json(rng.pick([[], "x", 1, true, {}, { v: 2 }, { v: 1, dir: 7 }, { v: 1 }]))),
        logs: true,
      };
    case 8:
      return {
        kind: "HELLO for a directory that is not a session",
        bytes: hello(json({
          v: 1,
          framing: "lines",
          dir: rng.pick([
            "/etc",
            `${dir}/../etc`,
            `${dir}/${prefix}../..`,
            `${dir}/${prefix}missing${rng.u32()}`,
            dir,
            "",
            `${dir}/${prefix}\u0000x`,
          ]),
        })),
        logs: true,
      };
    case 9:
      return {
        kind: "DATA for an unknown session",
        bytes: encodeRecord(RecordType.DATA, rng.u32(), payload(rng, rng.int(0, 100), false)),
        logs: false,
      };
    case 10:
      return {
        kind: "BYE for an unknown session",
        bytes: encodeRecord(RecordType.BYE, rng.u32(), new Uint8Array(0)),
        logs: false,
      };
    case 11:
      return {
        kind: "unknown record type",
        bytes: concatBytes([fields(rng.pick([0, 4, 9, 255]), rng.u32(), 3), new Uint8Array(3)]),
        logs: false,
      };
    case 12:
      return { kind: "empty HELLO", bytes: hello(new Uint8Array(0)), logs: true };
    case 13:
      // Killed the server before 179edc7.
      return { kind: "HELLO of JSON null", bytes: hello(json(null)), logs: true };
    default:
      // Forged a second log line before 179edc7.
      return {
        kind: "HELLO with a newline in dir",
        bytes: hello(json({ v: 1, framing: "lines", dir: `${dir}/${prefix}x\nforged line` })),
        logs: true,
      };
  }
}

async function runCtl(
  dir: string,
  name: string,
  framing: Framing,
  _max: number,
  rng: Rng,
  count: number,
) {
  // A HELLO that went unanswered may still be answered late: each retry uses a fresh
  // session directory, and the old ones stay open until the end so nothing lands astray.
  const clients = [await ProtocolClient.open(dir, name)];
  const summary: Summary = {
    mode: "ctl",
    framing,
    cases: 0,
    rejected: 0,
    echoed: 0,
    kinds: {},
    mismatches: [],
    barriers: 0,
    barriersDropped: 0,
  };
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
      // HELLO that shares a read with garbage is dropped with it: retry, and count that.
      sleepMs(5);
      let id: number | undefined;
      for (let attempt = 0; (id = client.hello(framing, 2000)) === undefined; attempt++) {
        summary.barriersDropped = (summary.barriersDropped as number) + 1;
        if (attempt === 5) fail("The server answers no HELLO after garbage on the request FIFO");
        clients.push(client = await ProtocolClient.open(dir, name));
      }
      summary.barriers = (summary.barriers as number) + 1;
      // A well-formed echo through the session, so "keeps serving" is checked per batch.
      const probe = framing === "length"
        ? concatBytes([header(5), new TextEncoder().encode("probe")])
        : new TextEncoder().encode("probe\n");
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

async function main(args: string[]): Promise<void> {
  const [mode, dir, name, framing, max, seed, count, pid] = args;
  const rng = new Rng(Number(seed));
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
  let summary: Summary;
  if (mode === "plain") {
    summary = runPlain(dir, name, f, Number(max), rng, Number(count), Number(pid));
  } else if (mode === "session") {
    summary = await runSession(dir, name, f, Number(max), rng, Number(count));
  } else if (mode === "ctl") {
    summary = await runCtl(dir, name, f, Number(max), rng, Number(count));
  } else fail(`Unknown mode "${mode}"`);
  summary.ms = Math.round(performance.now() - start);
  console.log(JSON.stringify(summary));
}

if (import.meta.main) await main(Deno.args);
