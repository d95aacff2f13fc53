/**
 * The plain pair's input loop: one client at a time, as in the seed, on a thread of its
 * own with blocking calls (2 system calls per echo). Internal; see `plain_engine.ts` for
 * the whole picture.
 *
 * ```text
 *           ┌──────────────── open(NAME.in) blocks: the server sleeps ◄──────────┐
 *           ▼                                                                    │
 *   a writer arrives ── begin ──► read ──► echo ──► reply: output ready and      │
 *                                  ▲                 nothing held? write it      │
 *                                  │                 here, without blocking;     │
 *                                  │                 else hand it to the output  │
 *                                  └─────────────────┘    (HELD += its size)     │
 *   end of file: a last line without "\n" is echoed, an unfinished frame refused ─┘
 *   HELD past max-message + 64 KiB, an oversized or malformed message: the client is
 *   refused (one log line), its input drained to end of file, its held replies dropped
 * ```
 *
 * @module
 */
import { Echoer } from "../framing/echoer.ts";
import { PIPE_BUF } from "../fifo/fifo_file.ts";
import { Blocked, type InputEvent, type PlainConfig, Slot } from "./plain_protocol.ts";

/** An open input: blocking reads, `null` at end of file. */
export interface InputEnd {
  readSync(buffer: Uint8Array): number | null;
  close(): void;
}

/** An open output: writes what fits now, never waits; throws `BrokenPipe` with no reader. */
export interface OutputEnd {
  tryWrite(bytes: Uint8Array): number;
  close(): void;
}

/** The calls the loop makes: real FIFOs on the worker, a script in unit tests. */
export interface InputIo {
  /** Waits for a writer on the input; throws what `open(2)` throws. */
  openInput(): InputEnd;
  /** Opens the output for non-blocking writes if a reader is there now, else `null`. */
  openOutputNow(): OutputEnd | null;
  /** Waits up to `ms` for the bytes held to change from `held` (or a stop). */
  waitForHeld(held: number, ms: number): void;
  /** Waits up to `ms` for the output to hold an open for `client` (or a stop). */
  waitForOutput(client: number, ms: number): void;
  /** Waits up to `ms` for the output to have taken the end of `client` (or a stop). */
  waitForEnded(client: number, ms: number): void;
  /** Receives the loop's events, in order. */
  post(event: InputEvent): void;
  /**
   * Hands replies to the output, in order with the events (`HELD` already counts them).
   * `bytes` is the loop's own buffer: copy it. May wait for room (a stop cuts it short);
   * false when none came for {@linkcode STALL_MS}, or on a stop.
   */
  hold(client: number, bytes: Uint8Array): boolean;
  /** Receives `received msg: …` lines. */
  log(text: string): void;
  /** Sleeps the thread (a stop cuts it short). */
  nap(ms: number): void;
}

/** One step of the loop's bounded waits between two clients. */
const WAIT_STEP_MS = 50;

/** How long a client may take none of its replies, held at the bound, before it is dropped. */
export const STALL_MS = 2000;

/** Whether `error` is running out of descriptors: one client's bad luck, not the end. */
function isTransient(error: unknown): boolean {
  return error instanceof Error && /os error 2[34]\b|EMFILE|ENFILE/.test(error.message);
}

/**
 * Runs the loop until the stop slot is set or the exit word arrives.
 *
 * @param config What to serve; `config.shared` backs the slots.
 * @param io The calls it makes.
 */
export function runPlainInput(config: PlainConfig, io: InputIo): void {
  const slots = new Int32Array(config.shared);
  const stopping = () => Atomics.load(slots, Slot.STOP) !== 0;
  const echoer = new Echoer(config.framing, {
    maxMessage: config.maxMessage,
    exitWord: config.exitWord,
    logMessages: config.logMessages,
  });
  // One pipe's worth per read; in raw framing a read is a message, so never more than allowed.
  const buffer = new Uint8Array(
    config.framing === "raw" ? Math.min(65536, config.maxMessage) : 65536,
  );
  const bound = config.maxMessage + 65536;
  const stats = { messages: 0, bytes: 0, clients: 0 };
  let client = 0;

  const blocked = (state: number) => Atomics.store(slots, Slot.BLOCKED, state);
  /** Waits until `done()`, in steps that a stop cuts short, for a second at most. */
  const waitAtMostASecond = (done: () => boolean, step: () => void) => {
    blocked(Blocked.NAP);
    for (let waited = 0; waited < 1000 && !stopping() && !done(); waited += WAIT_STEP_MS) step();
    blocked(Blocked.NONE);
  };
  while (!stopping()) {
    let input: InputEnd;
    blocked(Blocked.OPEN_INPUT);
    try {
      input = io.openInput();
    } catch (error) {
      // A FIFO gone from its private link: its directory was removed (`kill; rm -rf`, the
      // stop on its way). The server's name check says so within seconds, or the stop
      // comes; until then, look again now and then, without a log line.
      const vanished = error instanceof Deno.errors.NotFound;
      if (!vanished && !isTransient(error)) throw error;
      if (!vanished) {
        io.post({
          type: "client-error",
          message: `Cannot take a client now: ${(error as Error).message}`,
        });
      }
      blocked(Blocked.NAP);
      io.nap(100);
      continue;
    } finally {
      blocked(Blocked.NONE);
    }
    let inputOpen = true;
    const closeInput = () => {
      if (inputOpen) input.close();
      inputOpen = false;
    };
    client++;
    Atomics.store(slots, Slot.CLIENT, client);
    io.post({ type: "begin", client });
    echoer.reset();
    let output = null as OutputEnd | null;
    let sawData = false;
    let refused = false;
    /** Whether the last read filled the buffer: the client writes ahead of our echo. */
    let streaming = false;

    /** Sends a reply: straight into the pipe when it can, else through the output. */
    const deliver = (reply: Uint8Array) => {
      if (!reply.length || refused) return;
      // Writing here is safe only when nothing is held (order) and the output holds a
      // reader for this very client (a reader is there, and will see EOF when we end).
      // A reply of more than PIPE_BUF goes here in several all-or-nothing pieces, each a
      // write(2) that wakes the reader for a few KiB: while the client streams, its pipe is
      // rarely empty, and the output's one blocking write streams the reply instead (bulk
      // 0.6 -> 0.9 of C). A reply to a read that drained the input (a request awaiting its
      // answer) still goes here: the hop to the output would cost it more than the pieces.
      if (
        (reply.length <= PIPE_BUF || !streaming) && Atomics.load(slots, Slot.HELD) === 0 &&
        Atomics.load(slots, Slot.READER) === client
      ) {
        try {
          output ??= io.openOutputNow();
          const taken = output ? output.tryWrite(reply) : 0;
          if (taken) Atomics.store(slots, Slot.DELIVERED, client);
          if (taken === reply.length) return;
          reply = reply.subarray(taken);
        } catch (error) {
          if (!(error instanceof Deno.errors.BrokenPipe)) throw error;
          output?.close(); // the reader left: the output decides what that means
          output = null;
        }
      }
      if (!roomFor(reply.length)) {
        if (stopping()) return; // not the reader's fault: the server is going
        refuse(
          `its reader took none of the ${Atomics.load(slots, Slot.HELD)} bytes of replies held ` +
            `for it (at most ${bound}) for ${STALL_MS / 1000} s`,
          true,
        );
        return;
      }
      Atomics.add(slots, Slot.HELD, reply.length);
      if (io.hold(client, reply)) return;
      Atomics.sub(slots, Slot.HELD, reply.length);
      if (stopping()) return;
      refuse(`its reader took none of its replies for ${STALL_MS / 1000} s`, true);
    };
    /**
     * Waits, reading no more of the client, until `bytes` more fit in the replies held:
     * a client that reads slower than it writes is slowed down, not dropped. Fails when
     * the reader takes nothing for {@linkcode STALL_MS}: a client that stops reading, and
     * may be blocked writing to us.
     */
    const roomFor = (bytes: number) => {
      let held = Atomics.load(slots, Slot.HELD);
      if (held + bytes <= bound || held === 0) return true;
      blocked(Blocked.NAP);
      try {
        for (let since = Date.now(); !stopping();) {
          io.waitForHeld(held, 100);
          const now = Atomics.load(slots, Slot.HELD);
          if (now + bytes <= bound || now === 0) return true;
          if (now < held) since = Date.now();
          else if (Date.now() - since > STALL_MS) return false;
          held = now;
        }
        return false;
      } finally {
        blocked(Blocked.NONE);
      }
    };
    /** Stops echoing this client; replies already made still go out unless `dropHeld`. */
    const refuse = (reason: string, dropHeld = false) => {
      refused = true;
      output?.close(); // the output side decides when its reader sees end of file
      output = null;
      io.post({ type: "refused", client, dropHeld });
      io.post({ type: "client-error", message: `Dropped a client's stream: ${reason}` });
    };
    const echo = (reply: Uint8Array) => {
      if (config.logMessages) {
        const lines = echoer.takeLog();
        if (lines) io.log(lines);
      }
      deliver(reply);
      if (echoer.failure && !refused) refuse(echoer.failure.message);
    };

    try {
      while (!echoer.exitRequested) {
        blocked(Blocked.READ);
        const n = input.readSync(buffer);
        blocked(Blocked.NONE);
        if (stopping()) break; // what woke the read is not a message
        if (n === null) {
          // Closed before anything else: a writer that opens NAME.in while we still hold
          // it would be let in, then find no reader when it writes (EPIPE).
          closeInput();
          if (!refused) echo(echoer.finish());
          break;
        }
        if (!sawData) stats.clients++;
        sawData = true;
        streaming = n === buffer.length;
        // A refused client's input is drained to its end, so the next starts clean.
        if (!refused) echo(echoer.feed(buffer.subarray(0, n)));
      }
    } finally {
      blocked(Blocked.NONE);
      output?.close();
      closeInput();
    }
    stats.messages = echoer.messages;
    stats.bytes = echoer.bytes;
    // Is this client's reader there, though the output has no open for it yet? Looked at
    // before the next writer can come (its open waits for ours), so a reader there now is
    // this one's. The look is an open for writing, held until the output has its own:
    // closing it sooner could hand that reader an end of file meant for nobody.
    const served = Atomics.load(slots, Slot.SERVED) === client;
    const look = served ? null : io.openOutputNow();
    if (!look) Atomics.store(slots, Slot.LEFT_ALONE, client);
    io.post({ type: "end", client, stats: { ...stats }, readerThere: look !== null });
    if (look) {
      // Bounded: a reader that left meanwhile never lets the output's open return.
      waitAtMostASecond(
        () => Atomics.load(slots, Slot.SERVED) === client,
        () => io.waitForOutput(client, WAIT_STEP_MS),
      );
      look.close();
    }
    // The output closes NAME.out once this client's replies are out, so that its reader
    // sees end of file. A next writer let in before could bring a reader that opens
    // NAME.out in time to get that end of file instead of its replies (1 client in 500 of
    // a back-to-back series did). Bounded too: a reader that reads nothing more holds the
    // next client up for a second at most.
    waitAtMostASecond(
      () => Atomics.load(slots, Slot.ENDED) >= client,
      () => io.waitForEnded(client, WAIT_STEP_MS),
    );
    if (echoer.exitRequested) {
      io.post({ type: "exit" });
      return;
    }
  }
}
