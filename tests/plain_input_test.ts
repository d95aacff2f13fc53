/**
 * The plain pair's input loop (`runPlainInput`) driven by a script instead of FIFOs:
 * writers that arrive, reads that return scripted bytes or end of file, an output end that
 * takes some bytes or none (EAGAIN) or has lost its reader (EPIPE), and an output side
 * played by hooks. Each test checks the calls the loop made and the events it posted, in
 * order, and the shared slots. In-process, synchronous; needs no permission.
 *
 * The loop reads the time with `Date.now()` only, to drop a stalled client after
 * `STALL_MS`; there is no clock to inject, so while the (synchronous) loop runs, the
 * script replaces `Date.now` with a fake clock that a wait advances by the time it waits.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  type InputEnd,
  type InputIo,
  type OutputEnd,
  runPlainInput,
  STALL_MS,
} from "../lib/plain/plain_input.ts";
import {
  Blocked,
  type InputEvent,
  type PlainConfig,
  Slot,
  SLOTS,
} from "../lib/plain/plain_protocol.ts";
import { printable } from "../lib/framing/printable.ts";
import { encodeFrame, type Framing, FRAMINGS } from "../lib/framing/framing.ts";
import { concatBytes } from "../lib/framing/concat_bytes.ts";

const enc = (text: string) => new TextEncoder().encode(text);
const bytes = (...values: number[]) => new Uint8Array(values);
/** Trace lines name bytes with `\n` escaped: `String.raw` keeps expected lines readable. */
const r = String.raw;

/** The client closes its end: the read returns end of file. */
const EOF = null;
/** The server is stopped while the read waits: the stop slot is set, a waker's byte arrives. */
const STOP = { stop: true } as const;
/** What one read of the input returns. */
type Step = string | Uint8Array | typeof EOF | typeof STOP;

/** Plays the output side and the clock while the loop waits. */
interface Hooks {
  /** Called on each `waitForHeld`, after the clock has advanced by the wait's `ms`. */
  waitForHeld?(slots: Int32Array, clock: FakeClock): void;
  /** Called on each `waitForOutput`. */
  waitForOutput?(slots: Int32Array): void;
  /** Called on each `waitForEnded`; without it, the output takes the end at once. */
  waitForEnded?(slots: Int32Array, client: number): void;
}

/** One run of the loop: the writers that come, in order, and the world around them. */
interface Script extends Hooks {
  /** Overrides of the config: framing, maxMessage, exitWord, logMessages. */
  config?: Partial<PlainConfig>;
  /** Each writer's reads, or the error its `open()` throws. */
  writers: (Step[] | Error)[];
  /** The output holds each client's reader from its begin (`READER` = `SERVED` = it). */
  served?: boolean;
  /** A reader is on the output whenever the loop opens it without waiting. */
  reader?: boolean;
  /** Bytes the pipe takes from direct writes before it is full (EAGAIN); default: all. */
  room?: number;
  /** Direct writes fail with EPIPE: the reader left. */
  brokenPipe?: boolean;
}

/** A stand-in for `Date.now`, installed for one run. */
class FakeClock {
  now = 1_700_000_000_000;
  #real = Date.now;
  constructor() {
    Date.now = () => this.now;
  }
  [Symbol.dispose](): void {
    Date.now = this.#real;
  }
}

/** What a run did. */
interface Run {
  /** Every call and event in order; repeats of one line are folded into `line ×n`. */
  trace: string[];
  events: Handed[];
  slots: Record<keyof typeof Slot, number>;
  /** Fake milliseconds from the start to each `refused` event. */
  refusedAt: number[];
  /** Fake milliseconds the run took (only waits advance the clock). */
  elapsed: number;
  /** What `runPlainInput` threw (`undefined`: it returned). */
  thrown?: unknown;
}

/** How bytes appear in the trace: quoted text, or a count when long. */
function shown(bytes: Uint8Array): string {
  return bytes.length > 40 ? `${bytes.length} bytes` : `"${printable(bytes)}"`;
}

/** What the loop hands on: its events, and the replies it holds (`hold`). */
type Handed = InputEvent | { type: "replies"; client: number; bytes: Uint8Array };

/** One event as a trace line. */
function describe(event: Handed): string {
  switch (event.type) {
    case "begin":
      return `begin ${event.client}`;
    case "replies":
      return `replies ${event.client} ${shown(event.bytes)}`;
    case "refused":
      return `refused ${event.client}${event.dropHeld ? " dropping held" : ""}`;
    case "end": {
      const { messages, bytes, clients } = event.stats;
      return `end ${event.client}, readerThere=${event.readerThere}: ` +
        `${messages} messages, ${bytes} bytes, ${clients} clients`;
    }
    case "client-error":
    case "fatal":
      return `${event.type}: ${event.message}`;
    default:
      return event.type;
  }
}

/** Folds runs of one line into `line ×n`. */
function fold(lines: string[]): string[] {
  const folded: string[] = [];
  let count = 0;
  lines.forEach((line, i) => {
    count++;
    if (lines[i + 1] === line) return;
    folded.push(count > 1 ? `${line} ×${count}` : line);
    count = 0;
  });
  return folded;
}

/** Thrown by `openInput` once every scripted writer has come. */
class NoMoreWriters extends Error {}

/** Runs the loop on `script` and reports what it did. */
function run(script: Script): Run {
  const config: PlainConfig = {
    input: "/nonexistent/pipe.in",
    output: "/nonexistent/pipe.out",
    outputName: "/tmp/pipe.out",
    framing: "lines",
    maxMessage: 1 << 20,
    exitWord: "exit",
    logMessages: false,
    uid: 0,
    shared: new SharedArrayBuffer(SLOTS * 4),
    // The fake hold() posts instead.
    ring: { bytes: new SharedArrayBuffer(0), records: new SharedArrayBuffer(0) },
    ...script.config,
  };
  const slots = new Int32Array(config.shared);
  const trace: string[] = [];
  const events: Handed[] = [];
  const refusedAt: number[] = [];
  const writers = [...script.writers];
  let room = script.room ?? Infinity;
  using clock = new FakeClock();
  const start = clock.now;

  /** The loop must say what it is blocked in, so that a stop can wake just that call. */
  const expectBlocked = (state: number, call: string) =>
    assert.equal(Atomics.load(slots, Slot.BLOCKED), state, `BLOCKED during ${call}`);

  const inputOf = (steps: Step[]): InputEnd => {
    let pending: Uint8Array = new Uint8Array(0);
    return {
      readSync(buffer) {
        expectBlocked(Blocked.READ, "readSync");
        if (!pending.length) {
          assert.ok(steps.length, "the loop read past the end of its writer's script");
          const step = steps.shift()!;
          if (step === EOF) {
            trace.push("read: end of file");
            return null;
          }
          if (step instanceof Uint8Array) {
            pending = step;
          } else if (typeof step === "string") {
            pending = enc(step);
          } else {
            Atomics.store(slots, Slot.STOP, 1);
            pending = new Uint8Array(1);
            trace.push("stop");
          }
        }
        const n = Math.min(buffer.length, pending.length);
        buffer.set(pending.subarray(0, n));
        trace.push(`read ${shown(pending.subarray(0, n))}`);
        pending = pending.subarray(n);
        return n;
      },
      close: () => void trace.push("close input"),
    };
  };
  const output: OutputEnd = {
    tryWrite(bytes) {
      if (script.brokenPipe) {
        trace.push(`write ${shown(bytes)}: EPIPE`);
        throw new Deno.errors.BrokenPipe("Cannot write FIFO: no reader");
      }
      const taken = Math.min(room, bytes.length);
      room -= taken;
      trace.push(`write ${shown(bytes)}: ${taken} taken`);
      return taken;
    },
    close: () => void trace.push("close output"),
  };
  const io: InputIo = {
    openInput() {
      expectBlocked(Blocked.OPEN_INPUT, "openInput");
      const writer = writers.shift();
      if (!writer) {
        Atomics.store(slots, Slot.STOP, 1);
        throw new NoMoreWriters("no more writers");
      }
      if (writer instanceof Error) {
        trace.push(`open: ${writer.message}`);
        throw writer;
      }
      trace.push("open");
      return inputOf(writer);
    },
    openOutputNow() {
      trace.push(`open output now: ${script.reader ? "a reader" : "no reader"}`);
      return script.reader ? output : null;
    },
    waitForHeld(held, ms) {
      expectBlocked(Blocked.NAP, "waitForHeld");
      trace.push(`wait for held ≠ ${held}`);
      clock.now += ms;
      script.waitForHeld?.(slots, clock);
    },
    waitForEnded(client) {
      expectBlocked(Blocked.NAP, "waitForEnded");
      trace.push(`wait for the output to take end ${client}`);
      if (script.waitForEnded) script.waitForEnded(slots, client);
      else Atomics.store(slots, Slot.ENDED, client);
    },
    waitForOutput(client) {
      expectBlocked(Blocked.NAP, "waitForOutput");
      trace.push(`wait for the output to serve ${client}`);
      script.waitForOutput?.(slots);
    },
    hold(client, bytes) {
      assert.ok(Atomics.load(slots, Slot.HELD) >= bytes.length, "HELD counts replies");
      const event = { type: "replies" as const, client, bytes: bytes.slice() };
      events.push(event);
      trace.push(describe(event));
      return true;
    },
    post(event) {
      if (event.type === "refused") refusedAt.push(clock.now - start);
      if (event.type === "begin" && script.served) {
        Atomics.store(slots, Slot.READER, event.client);
        Atomics.store(slots, Slot.SERVED, event.client);
      }
      events.push(event);
      trace.push(describe(event));
    },
    log: (text) => void trace.push(`log ${JSON.stringify(text)}`),
    nap(ms) {
      expectBlocked(Blocked.NAP, "nap");
      trace.push(`nap ${ms}`);
    },
  };

  let thrown: unknown;
  try {
    runPlainInput(config, io);
  } catch (error) {
    if (!(error instanceof NoMoreWriters)) thrown = error;
    else trace.push("(no more writers)");
  }
  assert.equal(Atomics.load(slots, Slot.BLOCKED), Blocked.NONE, "BLOCKED after the loop");
  const named = Object.fromEntries(
    Object.entries(Slot).map(([name, slot]) => [name, Atomics.load(slots, slot)]),
  ) as Record<keyof typeof Slot, number>;
  return {
    trace: fold(trace),
    events,
    slots: named,
    refusedAt,
    elapsed: clock.now - start,
    thrown,
  };
}

/** A scenario whose whole trace is checked, with the slots it leaves. */
interface Case {
  name: string;
  script: Script;
  trace: string[];
  slots?: Partial<Run["slots"]>;
  /** The message `runPlainInput` throws, if it should. */
  thrown?: string;
}

const frame = (text: string) => encodeFrame("length", enc(text));

/** In `framing`, one message a read: echoed straight to a served reader; the exit word. */
function framingCases(framing: Framing): Case[] {
  const config = { framing };
  const wire = (text: string) => shown(encodeFrame(framing, enc(text)));
  return [
    {
      name: `${framing}: a served client's messages are written straight into the output`,
      script: {
        config,
        served: true,
        reader: true,
        writers: [[...["a", "bc"].map((t) => encodeFrame(framing, enc(t))), EOF]],
      },
      trace: [
        "open",
        "begin 1",
        `read ${wire("a")}`,
        "open output now: a reader",
        `write ${wire("a")}: ${encodeFrame(framing, enc("a")).length} taken`,
        `read ${wire("bc")}`,
        `write ${wire("bc")}: ${encodeFrame(framing, enc("bc")).length} taken`,
        "read: end of file",
        "close input",
        "close output",
        "end 1, readerThere=false: 2 messages, 3 bytes, 1 clients",
        "wait for the output to take end 1",
        "(no more writers)",
      ],
      slots: { CLIENT: 1, READER: 1, SERVED: 1, DELIVERED: 1, HELD: 0 },
    },
    {
      name: `${framing}: the exit word ends the loop; nothing after it is read or echoed`,
      script: {
        config,
        writers: [[...["a", "exit", "b"].map((t) => encodeFrame(framing, enc(t)))], [EOF]],
      },
      trace: [
        "open",
        "begin 1",
        `read ${wire("a")}`,
        `replies 1 ${wire("a")}`,
        `read ${wire("exit")}`,
        "close input",
        "open output now: no reader",
        "end 1, readerThere=false: 1 messages, 1 bytes, 1 clients",
        "wait for the output to take end 1",
        "exit",
      ],
      slots: { STOP: 0, CLIENT: 1, HELD: encodeFrame(framing, enc("a")).length },
    },
  ];
}

/** A message over max-message in `framing`, refused with one event and one log line. */
function oversizedCase(framing: "lines" | "length"): Case {
  const wires = ["ok", "toolong", "more"].map((t) => encodeFrame(framing, enc(t)));
  return {
    name: `${framing}: an oversized message refuses the client once; its input is drained`,
    script: {
      config: { framing, maxMessage: 4 },
      writers: [[concatBytes(wires), encodeFrame(framing, enc("x")), EOF]],
    },
    trace: [
      "open",
      "begin 1",
      `read ${shown(concatBytes(wires))}`,
      `replies 1 ${shown(wires[0])}`,
      "refused 1",
      "client-error: Dropped a client's stream: " +
      "Message of 7 bytes or more exceeds the maximum of 4 bytes",
      `read ${shown(encodeFrame(framing, enc("x")))}`,
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 1, readerThere=false: 1 messages, 2 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
    slots: { HELD: wires[0].length, LEFT_ALONE: 1 },
  };
}

/** A client that sends nothing, with a reader on the output when it ends. */
const EMPTY_WITH_READER = [
  "open",
  "begin 1",
  "read: end of file",
  "close input",
  "open output now: a reader",
  "end 1, readerThere=true: 0 messages, 0 bytes, 0 clients",
];

/** 4096 lines of 16 bytes: a read that fills the loop's 64 KiB buffer. */
const FULL_READ = enc("0123456789abcde\n".repeat(4096));

const CASES: Case[] = [
  ...FRAMINGS.flatMap(framingCases),
  {
    name: "lines: a reply over PIPE_BUF to a read that filled the buffer goes to the output, " +
      "whole; one to a read that drained the input is written straight in",
    script: {
      served: true,
      reader: true,
      writers: [[enc("a\n" + "b".repeat(65534)), "\n", FULL_READ, "c\n", EOF]],
    },
    trace: [
      "open",
      "begin 1",
      "read 65536 bytes",
      "open output now: a reader",
      r`write "a\n": 2 taken`,
      r`read "\n"`,
      "write 65535 bytes: 65535 taken",
      "read 65536 bytes",
      "replies 1 65536 bytes",
      r`read "c\n"`,
      r`replies 1 "c\n"`,
      "read: end of file",
      "close input",
      "close output",
      "end 1, readerThere=false: 4099 messages, 126976 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
    slots: { HELD: 65536 + 2, DELIVERED: 1 },
  },
  oversizedCase("lines"),
  oversizedCase("length"),
  {
    name: "lines: with no reader on the output, replies are posted to it and HELD counts them",
    script: { writers: [["a\nb\n", "c\n", EOF]] },
    trace: [
      "open",
      "begin 1",
      r`read "a\nb\n"`,
      r`replies 1 "a\nb\n"`,
      r`read "c\n"`,
      r`replies 1 "c\n"`,
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 1, readerThere=false: 3 messages, 3 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
    slots: { CLIENT: 1, READER: 0, DELIVERED: 0, HELD: 6, LEFT_ALONE: 1 },
  },
  {
    name: "length: frames split across reads are echoed whole, each read's in one reply",
    script: {
      config: { framing: "length" },
      served: true,
      reader: true,
      writers: [[
        bytes(0, 0, 0),
        bytes(2, 0x68, 0x69, 0, 0),
        concatBytes([bytes(0, 0), frame("xyz")]),
        EOF,
      ]],
    },
    trace: [
      "open",
      "begin 1",
      r`read "\x00\x00\x00"`,
      r`read "\x02hi\x00\x00"`,
      "open output now: a reader",
      r`write "\x00\x00\x00\x02hi": 6 taken`,
      r`read "\x00\x00\x00\x00\x00\x03xyz"`,
      r`write "\x00\x00\x00\x00\x00\x00\x00\x03xyz": 11 taken`,
      "read: end of file",
      "close input",
      "close output",
      "end 1, readerThere=false: 3 messages, 5 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
  },
  {
    name: "raw: a read takes at most max-message bytes, and each read is one message",
    script: { config: { framing: "raw", maxMessage: 4 }, writers: [["abcdefghij", EOF]] },
    trace: [
      "open",
      "begin 1",
      `read "abcd"`,
      `replies 1 "abcd"`,
      `read "efgh"`,
      `replies 1 "efgh"`,
      `read "ij"`,
      `replies 1 "ij"`,
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 1, readerThere=false: 3 messages, 10 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
  },
  {
    name: "lines: a last line without \\n is echoed as sent at end of file",
    script: { writers: [["a\nla", "st", EOF]] },
    trace: [
      "open",
      "begin 1",
      r`read "a\nla"`,
      r`replies 1 "a\n"`,
      `read "st"`,
      "read: end of file",
      "close input",
      `replies 1 "last"`,
      "open output now: no reader",
      "end 1, readerThere=false: 2 messages, 5 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
  },
  {
    name: "length: a frame unfinished at end of file is refused with one log line",
    script: {
      config: { framing: "length" },
      writers: [[concatBytes([frame("ok"), bytes(0, 0, 0, 5, 0x68, 0x69)]), EOF]],
    },
    trace: [
      "open",
      "begin 1",
      r`read "\x00\x00\x00\x02ok\x00\x00\x00\x05hi"`,
      r`replies 1 "\x00\x00\x00\x02ok"`,
      "read: end of file",
      "close input",
      "refused 1",
      "client-error: Dropped a client's stream: " +
      "The stream ended inside a message (6 bytes held or still expected)",
      "open output now: no reader",
      "end 1, readerThere=false: 1 messages, 2 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
  },
  {
    name: "a client that ends with its reader on the output waits until the output serves it",
    script: {
      reader: true,
      writers: [[EOF]],
      waitForOutput: (slots) => Atomics.store(slots, Slot.SERVED, 1),
    },
    trace: [
      ...EMPTY_WITH_READER,
      "wait for the output to serve 1",
      "close output",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
    slots: { LEFT_ALONE: 0, SERVED: 1 },
  },
  {
    name: "a reader the output never serves is let go after a bounded number of waits",
    script: { reader: true, writers: [[EOF]] },
    trace: [
      ...EMPTY_WITH_READER,
      "wait for the output to serve 1 ×20",
      "close output",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
    slots: { LEFT_ALONE: 0, SERVED: 0 },
  },
  {
    name: "a stop during a read ends the client and the loop; the waker's byte is not echoed",
    script: { writers: [["a\n", STOP, "never read\n"], ["never opened\n"]] },
    trace: [
      "open",
      "begin 1",
      r`read "a\n"`,
      r`replies 1 "a\n"`,
      "stop",
      r`read "\x00"`,
      "close input",
      "open output now: no reader",
      "end 1, readerThere=false: 1 messages, 1 bytes, 1 clients",
    ],
    slots: { STOP: 1, HELD: 2 },
  },
  {
    name: "clients are numbered in turn; stats add up; one that sends nothing is not counted",
    script: {
      config: { framing: "length" },
      writers: [[concatBytes([frame("ok"), bytes(0, 0, 0)]), EOF], [frame("hi"), EOF], [EOF]],
    },
    trace: [
      "open",
      "begin 1",
      r`read "\x00\x00\x00\x02ok\x00\x00\x00"`,
      r`replies 1 "\x00\x00\x00\x02ok"`,
      "read: end of file",
      "close input",
      "refused 1",
      "client-error: Dropped a client's stream: " +
      "The stream ended inside a message (3 bytes held or still expected)",
      "open output now: no reader",
      "end 1, readerThere=false: 1 messages, 2 bytes, 1 clients",
      "wait for the output to take end 1",
      "open",
      "begin 2",
      r`read "\x00\x00\x00\x02hi"`,
      r`replies 2 "\x00\x00\x00\x02hi"`,
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 2, readerThere=false: 2 messages, 4 bytes, 2 clients",
      "wait for the output to take end 2",
      "open",
      "begin 3",
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 3, readerThere=false: 2 messages, 4 bytes, 2 clients",
      "wait for the output to take end 3",
      "(no more writers)",
    ],
    slots: { CLIENT: 3, LEFT_ALONE: 3, HELD: 12 },
  },
  {
    name: "running out of descriptors costs one log line and a nap, not the server",
    script: { writers: [new Error("Too many open files (os error 24)"), [EOF]] },
    trace: [
      "open: Too many open files (os error 24)",
      "client-error: Cannot take a client now: Too many open files (os error 24)",
      "nap 100",
      "open",
      "begin 1",
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 1, readerThere=false: 0 messages, 0 bytes, 0 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
  },
  {
    name: "a FIFO gone from its path (the directory removed) is looked for again, not fatal",
    script: {
      writers: [
        new Deno.errors.NotFound('Cannot open FIFO "in": it does not exist'),
        ["a\n", EOF],
      ],
    },
    trace: [
      'open: Cannot open FIFO "in": it does not exist',
      "nap 100",
      "open",
      "begin 1",
      r`read "a\n"`,
      r`replies 1 "a\n"`,
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 1, readerThere=false: 1 messages, 1 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
  },
  {
    name: "any other error opening the input ends the loop",
    script: { writers: [new Deno.errors.PermissionDenied("Permission denied (os error 13)")] },
    trace: ["open: Permission denied (os error 13)"],
    thrown: "Permission denied (os error 13)",
  },
  {
    name: "a full pipe (EAGAIN) takes part of a reply; the rest, and later replies, are posted",
    script: { served: true, reader: true, room: 3, writers: [["hello\n", "b\n", EOF]] },
    trace: [
      "open",
      "begin 1",
      r`read "hello\n"`,
      "open output now: a reader",
      r`write "hello\n": 3 taken`,
      r`replies 1 "lo\n"`,
      r`read "b\n"`,
      r`replies 1 "b\n"`,
      "read: end of file",
      "close input",
      "close output",
      "end 1, readerThere=false: 2 messages, 6 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
    slots: { DELIVERED: 1, HELD: 5 },
  },
  {
    name: "a reader that left (EPIPE) closes the direct output; replies go to the output",
    script: { served: true, reader: true, brokenPipe: true, writers: [["a\n", "b\n", EOF]] },
    trace: [
      "open",
      "begin 1",
      r`read "a\n"`,
      "open output now: a reader",
      r`write "a\n": EPIPE`,
      "close output",
      r`replies 1 "a\n"`,
      r`read "b\n"`,
      r`replies 1 "b\n"`,
      "read: end of file",
      "close input",
      "end 1, readerThere=false: 2 messages, 2 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
    slots: { DELIVERED: 0, HELD: 4 },
  },
  {
    name: "with logMessages, a read's messages are logged in one call before their reply",
    script: { config: { logMessages: true }, writers: [["a\nb\n", EOF]] },
    trace: [
      "open",
      "begin 1",
      r`read "a\nb\n"`,
      r`log "received msg: a\nreceived msg: b\n"`,
      r`replies 1 "a\nb\n"`,
      "read: end of file",
      "close input",
      "open output now: no reader",
      "end 1, readerThere=false: 2 messages, 2 bytes, 1 clients",
      "wait for the output to take end 1",
      "(no more writers)",
    ],
  },
];

for (const { name, script, trace, slots, thrown } of CASES) {
  Deno.test(`runPlainInput: ${name}`, () => {
    const got = run(script);
    assert.equal((got.thrown as Error | undefined)?.message, thrown);
    assert.deepEqual(got.trace, trace);
    if (slots) {
      const picked = Object.fromEntries(
        Object.keys(slots).map((k) => [k, got.slots[k as keyof typeof slots]]),
      );
      assert.deepEqual(picked, slots);
    }
  });
}

Deno.test("runPlainInput: the next writer waits until the output has taken the last end (bounded)", () => {
  // The output takes client 1's end at the third look, and never client 2's: the loop
  // gives up on that after 1 s of waits, and a stop cuts such a wait short.
  let looks = 0;
  const got = run({
    served: true,
    reader: true,
    writers: [["a\n", EOF], [EOF]],
    waitForEnded(slots, client) {
      if (client === 1 && ++looks === 3) Atomics.store(slots, Slot.ENDED, client);
    },
  });
  assert.deepEqual(got.trace, [
    "open",
    "begin 1",
    r`read "a\n"`,
    "open output now: a reader",
    r`write "a\n": 2 taken`,
    "read: end of file",
    "close input",
    "close output",
    "end 1, readerThere=false: 1 messages, 1 bytes, 1 clients",
    "wait for the output to take end 1 ×3",
    "open",
    "begin 2",
    "read: end of file",
    "close input",
    "end 2, readerThere=false: 1 messages, 1 bytes, 1 clients",
    "wait for the output to take end 2 ×20",
    "(no more writers)",
  ]);
  const stopped = run({
    served: true,
    writers: [[EOF], [EOF]],
    waitForEnded: (slots) => Atomics.store(slots, Slot.STOP, 1),
  });
  assert.deepEqual(stopped.trace.slice(-2), [
    "end 1, readerThere=false: 0 messages, 0 bytes, 0 clients",
    "wait for the output to take end 1",
  ]);
});

// ------------------------------------------------- backpressure: HELD past the bound

/** max-message 16: the loop reads on while replies held stay within 16 + 65536 bytes. */
const BOUND_CONFIG = { maxMessage: 16 };
const BOUND = 16 + 65536;
/** 3855 lines of 16 bytes and their `\n`: 65535 bytes, all held for want of a reader. */
const NEARLY_BOUND = enc("0123456789abcdef\n".repeat(3855));
/** Two lines more: 34 bytes that do not fit. */
const OVER = "0123456789abcdef\n".repeat(2);

/** A client whose replies reach the bound at its second read, then sends `after\n`. */
function heldClient(hooks: Hooks & { last?: Step }): Run {
  return run({
    ...hooks,
    config: BOUND_CONFIG,
    writers: [[NEARLY_BOUND, OVER, hooks.last ?? "after\n", EOF]],
  });
}

/** The trace lines that are not waits. */
const notWaits = (trace: string[]) => trace.filter((line) => !line.startsWith("wait for held"));

Deno.test("runPlainInput: replies held past the bound stop the reads until the output takes them", () => {
  assert.ok(NEARLY_BOUND.length + OVER.length > BOUND && NEARLY_BOUND.length <= BOUND);
  const got = heldClient({
    waitForHeld: (slots) => Atomics.store(slots, Slot.HELD, 0), // the output wrote them all
  });
  assert.deepEqual(got.trace, [
    "open",
    "begin 1",
    "read 65535 bytes",
    "replies 1 65535 bytes",
    r`read "0123456789abcdef\n0123456789abcdef\n"`,
    "wait for held ≠ 65535",
    r`replies 1 "0123456789abcdef\n0123456789abcdef\n"`,
    r`read "after\n"`,
    r`replies 1 "after\n"`,
    "read: end of file",
    "close input",
    "open output now: no reader",
    "end 1, readerThere=false: 3858 messages, 61717 bytes, 1 clients",
    "wait for the output to take end 1",
    "(no more writers)",
  ]);
  assert.equal(got.slots.HELD, 34 + 6);
});

Deno.test("runPlainInput: one reply over the bound goes out when nothing is held: never a wait", () => {
  // A 16-byte frame carried over from the first read, then a full read of 1-byte frames:
  // one reply of 20 + 65535 bytes, more than the bound, with nothing held before it.
  const tiny = concatBytes(Array.from({ length: 65535 / 5 }, () => frame("x")));
  const got = run({
    config: { ...BOUND_CONFIG, framing: "length" },
    writers: [[frame("a".repeat(16)).subarray(0, 19), concatBytes([enc("a"), tiny]), EOF]],
  });
  assert.deepEqual(got.trace, [
    "open",
    "begin 1",
    r`read "\x00\x00\x00\x10aaaaaaaaaaaaaaa"`,
    "read 65536 bytes",
    `replies 1 ${20 + 65535} bytes`,
    "read: end of file",
    "close input",
    "open output now: no reader",
    "end 1, readerThere=false: 13108 messages, 13123 bytes, 1 clients",
    "wait for the output to take end 1",
    "(no more writers)",
  ]);
  assert.ok(20 + 65535 > BOUND);
});

Deno.test("runPlainInput: a client whose reader takes nothing for STALL_MS is dropped, its replies too", () => {
  const got = heldClient({});
  assert.deepEqual(notWaits(got.trace), [
    "open",
    "begin 1",
    "read 65535 bytes",
    "replies 1 65535 bytes",
    r`read "0123456789abcdef\n0123456789abcdef\n"`,
    "refused 1 dropping held",
    "client-error: Dropped a client's stream: its reader took none of the 65535 bytes of " +
    `replies held for it (at most ${BOUND}) for 2 s`,
    r`read "after\n"`, // drained, not echoed
    "read: end of file",
    "close input",
    "open output now: no reader",
    "end 1, readerThere=false: 3857 messages, 61712 bytes, 1 clients",
    "wait for the output to take end 1",
    "(no more writers)",
  ]);
  // Dropped once the fake clock passes STALL_MS, not long after, and only then.
  assert.equal(got.refusedAt.length, 1);
  assert.ok(got.refusedAt[0] > STALL_MS, `dropped after ${got.refusedAt[0]} ms`);
  assert.ok(got.refusedAt[0] <= STALL_MS * 1.1, `dropped after ${got.refusedAt[0]} ms`);
});

Deno.test("runPlainInput: a slow reader is waited for, never dropped: each byte it takes restarts the clock", () => {
  let wait = 0;
  const got = heldClient({
    waitForHeld(slots, clock) {
      clock.now += STALL_MS / 2; // each wait long, and only every other one sees progress
      if (++wait % 2) Atomics.sub(slots, Slot.HELD, 1);
    },
  });
  assert.deepEqual(got.events.filter((e) => e.type === "refused"), []);
  assert.deepEqual(notWaits(got.trace).slice(4, 7), [
    r`read "0123456789abcdef\n0123456789abcdef\n"`,
    r`replies 1 "0123456789abcdef\n0123456789abcdef\n"`,
    r`read "after\n"`,
  ]);
  // 65535 held: 17 bytes must go before 34 more fit in 65552, then 6 for "after\n".
  assert.equal(wait, 2 * 17 - 1 + 2 * 6);
  assert.ok(got.elapsed > 10 * STALL_MS, `${got.elapsed} ms of waits in all`);
});

Deno.test("runPlainInput: a stop while replies are held at the bound ends the wait at once", () => {
  const got = heldClient({
    waitForHeld: (slots) => Atomics.store(slots, Slot.STOP, 1),
    last: STOP, // the engine's waker releases the next read
  });
  assert.equal(got.trace.filter((line) => line.startsWith("wait for held")).length, 1);
  // Not the reader's fault: no "refused", no log line blaming it for a 2 s stall.
  assert.deepEqual(got.events.filter((e) => e.type === "refused" || e.type === "client-error"), []);
  assert.ok(!got.events.some((e) => e.type === "replies" && e.bytes.length === OVER.length));
  assert.deepEqual(got.trace.slice(-4), [
    r`read "\x00"`,
    "close input",
    "open output now: no reader",
    "end 1, readerThere=false: 3857 messages, 61712 bytes, 1 clients",
  ]);
  assert.equal(got.slots.STOP, 1);
});
