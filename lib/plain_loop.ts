/**
 * The plain pair's echo loop, written once as a generator of I/O requests so that the same
 * logic runs blocking on a worker thread ({@linkcode runPlainLoopSync}) or awaiting on the
 * event loop ({@linkcode runPlainLoop}). Internal.
 *
 * One client at a time, as in the seed: a cycle starts when a writer opens `NAME.in` and
 * ends at end of file, when the last writer has gone.
 *
 * @module
 */
import { concatBytes } from "./concat_bytes.ts";
import { Echoer } from "./echoer.ts";
import { FifoFile } from "./fifo_file.ts";
import type { PlainEngineConfig, PlainEngineEvent } from "./plain_engine.ts";
import { writeStdoutSync } from "./write_stdout.ts";

type Request =
  | { op: "open-input" }
  | { op: "open-output" }
  | { op: "read"; file: FifoFile; buffer: Uint8Array }
  | { op: "open-peeker" }
  | { op: "peek"; file: FifoFile; buffer: Uint8Array }
  | { op: "write"; file: FifoFile; bytes: Uint8Array }
  | { op: "sleep"; ms: number }
  | {
    op: "pump";
    input: FifoFile;
    output: FifoFile;
    buffer: Uint8Array;
    echo: (chunk: Uint8Array) => Uint8Array;
    done: () => boolean;
  };

/** What the driver sends back: a FifoFile, FifoFile | null, number | null or boolean. */
type Answer = unknown;
type Loop = Generator<Request, void, Answer>;
type Config = Omit<PlainEngineConfig, "control">;

/**
 * What the loop is blocked in, published in shared memory so that the engine wakes only
 * that call (waking the wrong one would, say, steal replies a client has yet to read).
 */
export const Blocked = { NONE: 0, OPEN_INPUT: 1, READ: 2, WRITE: 3, OPEN_OUTPUT: 4 } as const;
const BLOCKING = {
  "open-input": Blocked.OPEN_INPUT,
  "open-output": Blocked.OPEN_OUTPUT,
  read: Blocked.READ,
  write: Blocked.WRITE,
  "open-peeker": Blocked.NONE,
  peek: Blocked.NONE,
  sleep: Blocked.NONE,
  pump: Blocked.NONE, // publishes its own reads and writes
} as const;

/** The longest pause between two looks for a reader on `NAME.out` while none is there. */
const READER_POLL_MAX_MS = 50;

function* plainLoop(
  config: Config,
  stopping: () => boolean,
  emit: (e: PlainEngineEvent) => void,
): Loop {
  const echoer = new Echoer(config.framing, {
    maxMessage: config.maxMessage,
    exitWord: config.exitWord,
    logMessages: config.logMessages,
  });
  // One pipe's worth per read; a raw message is one read, so never more than allowed.
  const size = config.framing === "raw" ? Math.min(65536, config.maxMessage) : 65536;
  const buffer = new Uint8Array(size);
  const side = new Uint8Array(size);
  let clients = 0;
  const report = () =>
    emit({ type: "stats", messages: echoer.messages, bytes: echoer.bytes, clients });
  const echo = (chunk: Uint8Array) => {
    const reply = echoer.feed(chunk);
    if (config.logMessages) {
      const log = echoer.takeLog();
      if (log) writeStdoutSync(log);
    }
    return reply;
  };

  while (!stopping()) {
    const opened = (yield { op: "open-input" }) as FifoFile | Error;
    if (opened instanceof Error) {
      // Out of descriptors (EMFILE/ENFILE) is one client's bad luck, not the server's end.
      emit({ type: "client-error", message: `Cannot take a client now: ${opened.message}` });
      yield { op: "sleep", ms: 100 };
      continue;
    }
    using input = opened;
    echoer.reset();
    // The output is opened write-only, once there is a reply and a reader for it: we are
    // never a reader of our own output, so a client that leaves shows up as EPIPE, and its
    // unread replies die with the pipe instead of greeting the next client.
    let output: FifoFile | null = null;
    let readerLeft = false;
    let peeker: FifoFile | undefined;
    let dropped = 0;
    let sawData = false;
    let ended = false;
    let startDelay = 1;
    const count = () => {
      if (!sawData) clients++;
      sawData = true;
    };
    try {
      while (!ended && !stopping() && !echoer.failure && !echoer.exitRequested) {
        let reply: Uint8Array;
        if (!output && !sawData) {
          // A new client: it either opens the output first (and waits there for us, as C
          // clients and ours do) or writes first (the seed's client). Look for both
          // without blocking, so neither order deadlocks.
          peeker ??= (yield { op: "open-peeker" }) as FifoFile;
          output = (yield { op: "open-output" }) as FifoFile | null;
          if (output) continue;
          const m = (yield { op: "peek", file: peeker, buffer: side }) as number | null;
          if (m === null) break;
          if (!m) {
            yield { op: "sleep", ms: startDelay };
            startDelay = Math.min(startDelay * 2, READER_POLL_MAX_MS);
            continue;
          }
          count();
          reply = echo(side.subarray(0, m));
        } else if (output) {
          // The steady state, a client and its reader: read, echo, write in the driver,
          // without a round trip through this generator per message.
          const left = (yield {
            op: "pump",
            input,
            output,
            buffer,
            echo: (chunk) => {
              count();
              return echo(chunk);
            },
            done: () => stopping() || echoer.failure !== undefined || echoer.exitRequested,
          }) as Uint8Array | null | undefined;
          if (left === null) break;
          if (left) {
            output.close(); // EPIPE: the reader left; look for another without blocking
            output = null;
            readerLeft = true;
            dropped += left.length;
          }
          continue;
        } else {
          const n = (yield { op: "read", file: input, buffer }) as number | null;
          if (n === null) break;
          count();
          reply = echo(buffer.subarray(0, n));
        }
        if (!reply.length) continue;
        output ??= (yield { op: "open-output" }) as FifoFile | null;
        if (!output && !readerLeft) {
          // No reader yet: the seed's client opens the output only after its first
          // message, and `echo hi > pipe.in` never does. Hold the replies (within a bound)
          // for a first reader, watching both ends without blocking, so that a client that
          // leaves without one is seen leaving and its replies go with it.
          peeker ??= (yield { op: "open-peeker" }) as FifoFile;
          const held = [reply.slice()];
          let heldBytes = reply.length;
          for (let delay = 1; !stopping() && !echoer.failure && !echoer.exitRequested;) {
            yield { op: "sleep", ms: delay };
            delay = Math.min(delay * 2, READER_POLL_MAX_MS);
            output = (yield { op: "open-output" }) as FifoFile | null;
            if (output) break;
            const m = (yield { op: "peek", file: peeker, buffer: side }) as number | null;
            if (m === null) {
              ended = true;
              break;
            }
            if (!m) continue;
            delay = 1;
            const more = echo(side.subarray(0, m));
            if (heldBytes + more.length > config.maxMessage + 65536) {
              dropped += heldBytes + more.length;
              held.length = heldBytes = 0;
            } else if (more.length) {
              held.push(more.slice());
              heldBytes += more.length;
            }
          }
          reply = concatBytes(held);
        }
        // Once a reader has left (EPIPE), replies go only to a reader that is there now:
        // none is kept for whoever opens the output next.
        if (output && reply.length && !(yield { op: "write", file: output, bytes: reply })) {
          output.close();
          output = null;
          readerLeft = true;
        }
        if (!output) dropped += reply.length;
      }
      if (echoer.failure) {
        emit({
          type: "client-error",
          message: `Dropped a client's stream: ${echoer.failure.message}`,
        });
        // Closing our output end shows the client end of file; its input is drained until
        // it leaves, so the next client starts on a clean stream.
        output?.close();
        while (!stopping() && (yield { op: "read", file: input, buffer }) !== null) { /* drop */ }
      }
    } finally {
      output?.close();
      peeker?.close();
    }
    if (dropped) {
      emit({
        type: "client-error",
        message: `No reader on "${config.outPath}": dropped ${dropped} bytes of replies`,
      });
    }
    report();
    if (echoer.exitRequested) {
      emit({ type: "exit" });
      break;
    }
  }
  report();
}

/** Opens the output for writing if a reader is there now, else returns `null`. */
function openOutputSync(path: string, uid: number): FifoFile | null {
  let probe: FifoFile;
  try {
    probe = FifoFile.openSync(path, { access: "write", nonblocking: true, uid });
  } catch (error) {
    if (error instanceof Deno.errors.NotConnected) return null;
    throw error;
  }
  // A reader is there, so the blocking open returns at once; its writes then wait for
  // room instead of failing.
  using _ = probe;
  return FifoFile.openSync(path, { access: "write", uid });
}

/** Returns an error worth retrying (out of descriptors), or throws any other. */
function transient(error: unknown): Error {
  if (error instanceof Error && /os error 2[34]\b|EMFILE|ENFILE/.test(error.message)) return error;
  throw error;
}

/** `false` for a write whose reader has gone (EPIPE); any other error is thrown. */
function readerGone(error: unknown): false {
  if (error instanceof Deno.errors.BrokenPipe) return false;
  throw error;
}

const nap = new Int32Array(new SharedArrayBuffer(4));

/**
 * Performs one request, blocking the thread (`sync`) or returning a promise for the
 * operations that would block; the rest never wait either way.
 */
function perform(request: Request, config: Config, sync: boolean, blocked: Int32Array): unknown {
  const { uid } = config;
  switch (request.op) {
    case "open-input": {
      const options = { access: "read", uid } as const;
      if (!sync) return FifoFile.open(config.inPath, options).catch(transient);
      try {
        return FifoFile.openSync(config.inPath, options);
      } catch (error) {
        return transient(error);
      }
    }
    case "open-output":
      return openOutputSync(config.outPath, uid);
    case "open-peeker":
      return FifoFile.openSync(config.inPath, { access: "read", nonblocking: true, uid });
    case "peek":
      return request.file.readSync(request.buffer);
    case "read":
      return sync ? request.file.readSync(request.buffer) : request.file.read(request.buffer);
    case "write":
      if (!sync) return request.file.writeAll(request.bytes).then(() => true, readerGone);
      try {
        request.file.writeAllSync(request.bytes);
        return true;
      } catch (error) {
        return readerGone(error);
      }
    case "sleep":
      if (!sync) return new Promise((resolve) => setTimeout(resolve, request.ms));
      Atomics.wait(nap, 0, 0, request.ms);
      return;
    case "pump":
      return sync ? pumpSync(request, blocked) : pump(request, blocked);
  }
}

type Pump = Extract<Request, { op: "pump" }>;

/**
 * Echoes until the input ends (`null`), the reader leaves (the reply it refused) or
 * `done()` (`undefined`), publishing each blocking call for the engine's stop.
 */
function pumpSync(p: Pump, blocked: Int32Array): Uint8Array | null | undefined {
  for (;;) {
    Atomics.store(blocked, 0, Blocked.READ);
    const n = p.input.readSync(p.buffer);
    Atomics.store(blocked, 0, Blocked.NONE);
    if (n === null) return null;
    if (p.done()) return undefined; // stopping: what woke the read is not a message
    const reply = p.echo(p.buffer.subarray(0, n));
    if (reply.length) {
      Atomics.store(blocked, 0, Blocked.WRITE);
      try {
        p.output.writeAllSync(reply);
      } catch (error) {
        readerGone(error); // throws anything but EPIPE
        return reply;
      } finally {
        Atomics.store(blocked, 0, Blocked.NONE);
      }
    }
    if (p.done()) return undefined;
  }
}

/** {@linkcode pumpSync} with awaited calls, for the event-loop engine. */
async function pump(p: Pump, blocked: Int32Array): Promise<Uint8Array | null | undefined> {
  for (;;) {
    Atomics.store(blocked, 0, Blocked.READ);
    const n = await p.input.read(p.buffer).finally(() => Atomics.store(blocked, 0, Blocked.NONE));
    if (n === null) return null;
    if (p.done()) return undefined;
    const reply = p.echo(p.buffer.subarray(0, n));
    if (reply.length) {
      Atomics.store(blocked, 0, Blocked.WRITE);
      try {
        await p.output.writeAll(reply);
      } catch (error) {
        readerGone(error); // throws anything but EPIPE
        return reply;
      } finally {
        Atomics.store(blocked, 0, Blocked.NONE);
      }
    }
    if (p.done()) return undefined;
  }
}

/**
 * Runs the loop with blocking calls; for a worker thread.
 *
 * @param config What to serve.
 * @param stopping Polled between operations.
 * @param emit Receives the loop's events.
 * @param blocked Where the loop publishes what it is blocked in (see {@linkcode Blocked}).
 */
export function runPlainLoopSync(
  config: Config,
  stopping: () => boolean,
  emit: (event: PlainEngineEvent) => void,
  blocked: Int32Array,
): void {
  const loop = plainLoop(config, stopping, emit);
  for (let step = loop.next(); !step.done;) {
    Atomics.store(blocked, 0, BLOCKING[step.value.op]);
    const answer = perform(step.value, config, true, blocked);
    Atomics.store(blocked, 0, Blocked.NONE);
    step = loop.next(answer);
  }
}

/**
 * Runs the loop with awaited calls on the event loop: each operation hops to the runtime's
 * blocking pool, slower than {@linkcode runPlainLoopSync} but needs no worker.
 *
 * @param config What to serve.
 * @param stopping Polled between operations.
 * @param emit Receives the loop's events.
 * @param blocked Where the loop publishes what it is blocked in (see {@linkcode Blocked}).
 */
export async function runPlainLoop(
  config: Config,
  stopping: () => boolean,
  emit: (event: PlainEngineEvent) => void,
  blocked: Int32Array,
): Promise<void> {
  const loop = plainLoop(config, stopping, emit);
  for (let step = loop.next(); !step.done;) {
    Atomics.store(blocked, 0, BLOCKING[step.value.op]);
    const answer = await perform(step.value, config, false, blocked);
    Atomics.store(blocked, 0, Blocked.NONE);
    step = loop.next(answer);
  }
}
