/**
 * The plain pair's engine: the input loop on a worker thread, the output on the event
 * loop. Internal.
 *
 * The input loop (`plain_input.ts`) parks in `open(NAME.in)` while nobody talks, reads a
 * client with blocking calls and writes its replies straight into `NAME.out` whenever that
 * cannot block. Everything that must wait (a reader that has not arrived yet, a pipe that
 * is full because the client writes a large message before reading or reads slower than
 * we echo), and every reply over `PIPE_BUF` to a client that streams, goes through shared
 * memory (`reply_ring.ts`) to the output (`plain_output.ts`), which writes it with
 * blocking writes on a pool thread while the input loop reads on: a
 * single-threaded client never deadlocks, a bulk transfer streams as in C, and an idle
 * server makes no system call at all. Both open the FIFOs through the private links of
 * `FifoKeeper`, never the public names.
 *
 * @module
 */
import { FifoFile, releasePendingOpen } from "../fifo/fifo_file.ts";
import { startBundledWorker } from "./bundled_worker.ts";
import { PLAIN_WORKER_SOURCE } from "./plain_worker_bundle.ts";
import { PlainOutput } from "./plain_output.ts";
import { ringMemory } from "./reply_ring.ts";
import {
  Blocked,
  type InputEvent,
  type PlainConfig,
  type PlainStats,
  Slot,
  SLOTS,
} from "./plain_protocol.ts";

/** Callbacks of {@linkcode PlainEngine}. */
export interface PlainEngineHandlers {
  onExitWord(): void;
  /** A writer opened the input: a client begins. */
  onClient(): void;
  onClientError(message: string): void;
  onFatal(error: Error): void;
}

/** How long replies written before the exit word may wait for their reader. */
const EXIT_GRACE_MS = 1000;
const WAKE_INTERVAL_MS = 20;

/** Runs the plain pair (see the module doc) until {@linkcode PlainEngine.stop}. */
export class PlainEngine {
  /** The latest counters. */
  stats: PlainStats = { messages: 0, bytes: 0, clients: 0 };
  #config: PlainConfig;
  #slots: Int32Array;
  #worker: Worker;
  #output: PlainOutput;
  #stopped: Promise<void>;
  #finished = false;
  #exited = false;
  #stopping = false;

  /**
   * Starts both halves.
   *
   * @param config Everything but the shared memory.
   * @param handlers Where events go.
   */
  constructor(config: Omit<PlainConfig, "shared" | "ring">, handlers: PlainEngineHandlers) {
    const shared = new SharedArrayBuffer(SLOTS * 4);
    const ring = ringMemory(config.maxMessage);
    this.#config = { ...config, shared, ring };
    this.#slots = new Int32Array(shared);
    this.#output = new PlainOutput(this.#config, {
      onClientError: handlers.onClientError,
      onFatal: handlers.onFatal,
    });
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#stopped = promise.then(() => void (this.#finished = true));
    const onEvent = (event: InputEvent) => {
      // Replies in the ring came before this event.
      this.#output.takeRing();
      switch (event.type) {
        case "client-error":
          handlers.onClientError(event.message);
          break;
        case "exit":
          this.#exited = true;
          handlers.onExitWord();
          break;
        case "stopped":
          resolve();
          break;
        case "fatal":
          resolve();
          if (!this.#stopping) handlers.onFatal(new Error(event.message));
          break;
        case "begin":
          handlers.onClient();
          this.#output.handle(event);
          break;
        case "end":
          this.stats = event.stats;
          this.#output.handle(event);
          break;
        default:
          this.#output.handle(event);
      }
    };
    this.#worker = startBundledWorker(PLAIN_WORKER_SOURCE, "plain-input");
    this.#worker.onmessage = (event: MessageEvent<InputEvent>) => onEvent(event.data);
    this.#worker.onerror = (event) => {
      event.preventDefault();
      onEvent({ type: "fatal", message: `The plain pair's worker failed: ${event.message}` });
    };
    this.#worker.postMessage(this.#config);
  }

  /** Stops both halves, waking whatever call each is blocked in, and waits for them. */
  async stop(): Promise<void> {
    this.#stopping = true;
    Atomics.store(this.#slots, Slot.STOP, 1);
    Atomics.notify(this.#slots, Slot.STOP);
    if (this.#exited) await this.#output.flush(EXIT_GRACE_MS);
    while (!this.#finished) {
      this.#wake(Atomics.load(this.#slots, Slot.BLOCKED));
      await Promise.race([this.#stopped, new Promise((r) => setTimeout(r, WAKE_INTERVAL_MS))]);
    }
    await this.#output.stop();
    this.#worker.terminate();
  }

  /** Releases the one blocking call the input loop is in. */
  #wake(blocked: number): void {
    const { input, uid } = this.#config;
    if (blocked === Blocked.OPEN_INPUT) releasePendingOpen(input, "read", { uid });
    if (blocked === Blocked.NAP) {
      Atomics.notify(this.#slots, Slot.STOP);
      Atomics.notify(this.#slots, Slot.SERVED);
      Atomics.notify(this.#slots, Slot.HELD);
      Atomics.notify(this.#slots, Slot.ENDED);
    }
    if (blocked === Blocked.READ) {
      try {
        // One byte releases a parked read; the loop sees the stop slot and drops it.
        using waker = FifoFile.openSync(input, { access: "write", nonblocking: true, uid });
        waker.tryWrite(new Uint8Array(1));
      } catch { /* the client left meanwhile: the read has returned */ }
    }
  }
}
