/**
 * The plain pair's echo loop, written once as a generator of I/O requests so that the same
 * logic runs blocking on a worker thread ({@linkcode runPlainLoopSync}) or awaiting on the
 * event loop ({@linkcode runPlainLoop}). Internal.
 *
 * @module
 */
import { Echoer } from "./echoer.ts";
import { type FifoAccess, FifoFile } from "./fifo_file.ts";
import type { PlainEngineConfig, PlainEngineEvent } from "./plain_engine.ts";
import { writeStdoutSync } from "./write_stdout.ts";

type Request =
  | { op: "open"; path: string; access: FifoAccess }
  | { op: "read"; file: FifoFile; buffer: Uint8Array }
  | { op: "write"; file: FifoFile; bytes: Uint8Array };

type Loop = Generator<Request, void, FifoFile & (number | null)>;

function* plainLoop(
  config: Omit<PlainEngineConfig, "control">,
  stopping: () => boolean,
  emit: (event: PlainEngineEvent) => void,
): Loop {
  const echoer = new Echoer(config.framing, {
    maxMessage: config.maxMessage,
    exitWord: config.exitWord,
    logMessages: config.logMessages,
  });
  // One pipe's worth per read; a raw message is one read, so never more than allowed.
  const buffer = new Uint8Array(
    config.framing === "raw" ? Math.min(65536, config.maxMessage) : 65536,
  );
  let clients = 0;
  const report = () =>
    emit({ type: "stats", messages: echoer.messages, bytes: echoer.bytes, clients });

  while (!stopping()) {
    // Seed order: the input end first (waits for a client's writer), then the output end.
    // O_RDWR on the output never waits for a reader, so `echo hi > pipe.in` is served too.
    using input: FifoFile = yield { op: "open", path: config.inPath, access: "read" };
    if (stopping()) break;
    using output: FifoFile = yield { op: "open", path: config.outPath, access: "readwrite" };
    clients++;
    echoer.reset();
    for (;;) {
      const n: number | null = yield { op: "read", file: input, buffer };
      if (n === null || stopping()) break;
      const reply = echoer.feed(buffer.subarray(0, n));
      if (config.logMessages) {
        const log = echoer.takeLog();
        if (log) writeStdoutSync(log);
      }
      if (reply.length) yield { op: "write", file: output, bytes: reply };
      if (echoer.failure) {
        emit({
          type: "client-error",
          message: `Dropped a client's stream: ${echoer.failure.message}`,
        });
        // Closing our output end shows the client EOF; its input is drained until it
        // leaves, so the next client starts on a clean stream.
        output.close();
        while (!stopping() && (yield { op: "read", file: input, buffer }) !== null) { /* drop */ }
        break;
      }
      if (echoer.exitRequested) break;
    }
    // Leaving this block closes the output end: once the client has closed its end too,
    // the pipe and any unread replies die, instead of greeting the next client.
    report();
    if (echoer.exitRequested) {
      emit({ type: "exit" });
      break;
    }
  }
  report();
}

/**
 * Runs the loop with blocking calls; for a worker thread.
 *
 * @param config What to serve.
 * @param stopping Polled between operations.
 * @param emit Receives the loop's events.
 */
export function runPlainLoopSync(
  config: Omit<PlainEngineConfig, "control">,
  stopping: () => boolean,
  emit: (event: PlainEngineEvent) => void,
): void {
  const loop = plainLoop(config, stopping, emit);
  const uid = config.uid;
  let step = loop.next();
  while (!step.done) {
    const request = step.value;
    switch (request.op) {
      case "open":
        step = loop.next(FifoFile.openSync(request.path, { access: request.access, uid }) as never);
        break;
      case "read":
        step = loop.next(request.file.readSync(request.buffer) as never);
        break;
      case "write":
        request.file.writeAllSync(request.bytes);
        step = loop.next(undefined as never);
        break;
    }
  }
}

/**
 * Runs the loop with awaited calls on the event loop: each operation hops to the runtime's
 * blocking pool, slower than {@linkcode runPlainLoopSync} but needs no worker.
 *
 * @param config What to serve.
 * @param stopping Polled between operations.
 * @param emit Receives the loop's events.
 */
export async function runPlainLoop(
  config: Omit<PlainEngineConfig, "control">,
  stopping: () => boolean,
  emit: (event: PlainEngineEvent) => void,
): Promise<void> {
  const loop = plainLoop(config, stopping, emit);
  const uid = config.uid;
  let step = loop.next();
  while (!step.done) {
    const request = step.value;
    switch (request.op) {
      case "open":
        step = loop.next(
          await FifoFile.open(request.path, { access: request.access, uid }) as never,
        );
        break;
      case "read":
        step = loop.next(await request.file.read(request.buffer) as never);
        break;
      case "write":
        await request.file.writeAll(request.bytes);
        step = loop.next(undefined as never);
        break;
    }
  }
}
