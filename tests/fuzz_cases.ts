/**
 * The pure half of the fuzz: a seeded generator of hostile inputs (for the plain pair, for
 * sessions, and for the request FIFO) and the model of what the server must echo for each.
 * No I/O here, so `fuzz_driver.ts` (the subprocess that feeds a live server) and
 * `fuzz_scenario.ts` (the `connect()` clients in the test process) share one definition.
 *
 * @module
 */
import { concatBytes } from "../lib/framing/concat_bytes.ts";
import { PIPE_BUF } from "../lib/fifo/fifo_file.ts";
import type { Framing } from "../lib/framing/framing.ts";
import {
  encodeRecord,
  MAX_RECORD_PAYLOAD,
  RecordType,
  sessionPrefix,
} from "../lib/session/session_protocol.ts";
import { firstDifference } from "./first_difference.ts";
import type { Rng } from "./rng.ts";

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

const NEWLINE = new Uint8Array([10]);

/** The parts of one bad ending of a stream; `good` makes one well-formed message. */
type Ending = (rng: Rng, max: number, good: () => Uint8Array) => Uint8Array[];

/** The bad endings of each framing, by kind (the list); "good only" has none. */
const ENDINGS: Record<Framing, Record<string, Ending>> = {
  lines: {
    "good only": () => [],
    "half a line, then close": (rng, max) => [payload(rng, rng.int(1, max), true)],
    "line longer than max": (rng, max, good) => [
      payload(rng, rng.int(max + 1, 3 * max), true),
      NEWLINE,
      good(),
    ],
    "unterminated line longer than max": (rng, max) => [
      payload(rng, rng.int(max + 1, 3 * max), true),
    ],
    "line of max+1": (rng, max) => [payload(rng, max + 1, true), NEWLINE],
  },
  length: {
    "good only": () => [],
    "truncated header": (rng) => [payload(rng, rng.int(1, 3), false)],
    "lone header, no payload": (rng, max) => [header(rng.int(1, max))],
    "header with half its payload": (rng, max) => {
      const length = rng.int(2, max);
      return [header(length), payload(rng, rng.int(1, length - 1), false)];
    },
    "oversized length header": (rng, max) => [
      header(rng.int(max + 1, 0x7fffffff)),
      payload(rng, rng.int(0, max), false),
    ],
    "length header >= 2^31": (rng) => [
      header(rng.int(0x80000000, 0xffffffff)),
      payload(rng, rng.int(0, 64), false),
    ],
    "header of max+1": (rng, max) => [header(max + 1), payload(rng, max + 1, false)],
  },
  raw: {
    "good only": () => [],
    "raw message of max": (rng, max) => [payload(rng, max, false)],
    "raw write of 3*max": (rng, max) => [payload(rng, 3 * max, false)],
    "NUL run": (rng, max) => [new Uint8Array(rng.int(1, max))],
  },
};

/**
 * Generates one hostile input for `framing` with the server's `max`: a few well-formed
 * messages (some exactly `max`), then one of the bad endings the issue lists. Inputs stay
 * under 48 KiB so their echo always fits in a pipe.
 */
export function generateCase(rng: Rng, framing: Framing, max: number): FuzzCase {
  const good = (): Uint8Array => {
    const length = rng.chance(0.1) ? max : rng.int(0, Math.min(max, rng.chance(0.7) ? 64 : max));
    if (framing === "lines") return concatBytes([payload(rng, length, true), NEWLINE]);
    if (framing === "length") return concatBytes([header(length), payload(rng, length, false)]);
    return payload(rng, Math.max(1, length), false);
  };
  const parts: Uint8Array[] = [];
  const lead = rng.chance(0.3) ? 0 : rng.int(1, 4);
  for (let i = 0; i < lead; i++) parts.push(good());
  if (rng.chance(0.15)) {
    parts.push(payload(rng, rng.int(1, 3 * max), false));
    return { kind: "random bytes", bytes: concatBytes(parts) };
  }
  const kind = rng.pick(Object.keys(ENDINGS[framing]));
  parts.push(...ENDINGS[framing][kind](rng, max, good));
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
  const i = firstDifference(want, got);
  if (i < 0) return undefined;
  if (i < want.length && i < got.length) {
    return `byte ${i} differs (want ${want[i]}, got ${got[i]})`;
  }
  return `echo of ${got.length} bytes, want ${want.length}`;
}

/** One malformed write for the request FIFO, and whether the server must log it. */
export interface Garbage {
  kind: string;
  bytes: Uint8Array;
  logs: boolean;
}

/** One malformed write for the request FIFO of server `name` in `dir`. */
export function garbage(
  rng: Rng,
  dir: string,
  name: string,
): Garbage {
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
