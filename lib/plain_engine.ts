import { fileURLToPath } from "node:url";
import type { Framing } from "./framing.ts";
import { FifoFile, releasePendingOpen } from "./fifo_file.ts";
import { Blocked, runPlainLoop } from "./plain_loop.ts";

/**
 * Where the plain pair's loop runs: `worker` (blocking calls on a thread of its own, the
 * fast path; Deno needs read access to `lib/` to start it) or `async` (awaited calls on
 * the event loop). `auto` picks `worker` when that read access is granted.
 */
export type PlainEngineKind = "auto" | "worker" | "async";

const WORKER_URL = new URL("./plain_worker.ts", import.meta.url);

/** Resolves `auto` to the engine the granted permissions allow. */
export function resolveEngine(kind: PlainEngineKind): "worker" | "async" {
  if (kind !== "auto") return kind;
  const granted = WORKER_URL.protocol === "file:" &&
    Deno.permissions.querySync({ name: "read", path: fileURLToPath(WORKER_URL) }).state ===
      "granted";
  return granted ? "worker" : "async";
}

/** What the plain pair's worker needs to know (internal). */
export interface PlainEngineConfig {
  inPath: string;
  outPath: string;
  framing: Framing;
  maxMessage: number;
  exitWord: string;
  logMessages: boolean;
  uid: number;
  /** `Int32Array` view: `[0]` stop flag, `[1]` what the loop is blocked in (`Blocked`). */
  control: SharedArrayBuffer;
}

/** Counters of the plain pair. */
export interface PlainStats {
  messages: number;
  bytes: number;
  clients: number;
}

/** What the worker reports (internal). */
export type PlainEngineEvent =
  | ({ type: "stats" } & PlainStats)
  | { type: "client-error"; message: string }
  | { type: "exit" }
  | { type: "stopped" }
  | { type: "fatal"; message: string };

/** Callbacks of {@linkcode PlainEngine} (internal). */
export interface PlainEngineHandlers {
  onExitWord(): void;
  onClientError(message: string): void;
  onFatal(error: Error): void;
}

const WAKE_INTERVAL_MS = 20;
/**
 * How often a parked open is nudged. The input has a reader for the server's whole life
 * (the anchor), so a client can open it, write and leave before the loop parks in `open()`
 * again; the kernel wakes that open only when the next writer arrives, so those bytes
 * would wait for the next client. A nudge (a peer that comes and goes) lets the loop find
 * them within this delay.
 */
const NUDGE_INTERVAL_MS = 250;

/**
 * Runs the plain pair's echo loop (on a worker thread or the event loop) and stops it on
 * request (internal).
 *
 * The loop publishes which blocking call it is in (`open`, `read` or `write`) in shared
 * memory; {@linkcode PlainEngine.stop} sets the stop flag and, until the loop confirms,
 * releases that one call: a peer that comes and goes for an `open`, a byte the loop will
 * discard for a `read`, a drain for a `write` to a client that stopped reading.
 */
export class PlainEngine {
  /** The latest counters the worker reported. */
  stats: PlainStats = { messages: 0, bytes: 0, clients: 0 };
  /** Which engine runs the loop. */
  readonly kind: "worker" | "async";
  #config: PlainEngineConfig;
  #worker: Worker | undefined;
  #flags: Int32Array;
  #stopped: Promise<void>;
  #nudger: ReturnType<typeof setInterval>;
  #blocked: Int32Array;

  /**
   * Starts the loop, on a worker or the event loop.
   *
   * @param config Everything but `control`.
   * @param handlers Where its events go.
   * @param kind Which engine (see {@linkcode PlainEngineKind}).
   */
  constructor(
    config: Omit<PlainEngineConfig, "control">,
    handlers: PlainEngineHandlers,
    kind: PlainEngineKind = "auto",
  ) {
    const control = new SharedArrayBuffer(8);
    this.#flags = new Int32Array(control);
    this.#config = { ...config, control };
    this.kind = resolveEngine(kind);
    const { promise, resolve } = Promise.withResolvers<void>();
    this.#stopped = promise;
    const onEvent = (event: PlainEngineEvent) => {
      switch (event.type) {
        case "stats":
          this.stats = { messages: event.messages, bytes: event.bytes, clients: event.clients };
          break;
        case "client-error":
          handlers.onClientError(event.message);
          break;
        case "exit":
          handlers.onExitWord();
          break;
        case "stopped":
          resolve();
          break;
        case "fatal":
          resolve();
          if (!this.#stopping) handlers.onFatal(new Error(event.message));
          break;
      }
    };
    const blocked = new Int32Array(control, 4, 1);
    this.#blocked = blocked;
    this.#nudger = setInterval(() => {
      const state = Atomics.load(blocked, 0);
      if (state === Blocked.OPEN_INPUT) releasePendingOpen(config.inPath, "read");
      // The output is opened only once a probe saw a reader, so this open returns at once,
      // unless that reader left in between: then a reader that comes and goes releases
      // it, and the next write finds the reader gone (EPIPE).
      if (state === Blocked.OPEN_OUTPUT) releasePendingOpen(config.outPath, "write");
    }, NUDGE_INTERVAL_MS);
    if (this.kind === "async") {
      runPlainLoop(config, () => this.#stopping, onEvent, blocked).then(
        () => onEvent({ type: "stopped" }),
        (error) => onEvent({ type: "fatal", message: error?.message ?? String(error) }),
      );
      return;
    }
    const worker = new Worker(WORKER_URL, { type: "module" });
    this.#worker = worker;
    worker.onmessage = (event: MessageEvent<PlainEngineEvent>) => onEvent(event.data);
    worker.onerror = (event) => {
      event.preventDefault();
      onEvent({ type: "fatal", message: `The plain pair's worker failed: ${event.message}` });
    };
    worker.postMessage(this.#config);
  }

  get #stopping(): boolean {
    return Atomics.load(this.#flags, 0) !== 0;
  }

  /** Stops the loop, waking it from any blocking call, and waits until it is gone. */
  async stop(): Promise<void> {
    Atomics.store(this.#flags, 0, 1);
    clearInterval(this.#nudger);
    let done = false;
    this.#stopped.then(() => done = true);
    // A loop that is finishing by itself (the exit word) is left alone: waking it could
    // only disturb replies on their way to a client.
    for (;;) {
      await Promise.race([this.#stopped, new Promise((r) => setTimeout(r, WAKE_INTERVAL_MS))]);
      if (done) break;
      this.#wake(Atomics.load(this.#blocked, 0));
    }
    this.#worker?.terminate();
  }

  /** Releases the one blocking call the loop is in. */
  #wake(blocked: number): void {
    const { inPath, outPath, uid } = this.#config;
    if (blocked === Blocked.OPEN_INPUT) releasePendingOpen(inPath, "read");
    if (blocked === Blocked.OPEN_OUTPUT) releasePendingOpen(outPath, "write");
    if (blocked === Blocked.READ) {
      try {
        // One byte releases a parked read; the loop sees the stop flag and drops it.
        using input = FifoFile.openSync(inPath, { access: "write", nonblocking: true, uid });
        input.tryWrite(new Uint8Array(1));
      } catch { /* the client left meanwhile: the read has returned */ }
    }
    if (blocked === Blocked.WRITE) {
      try {
        // The client stopped reading: its replies are lost anyway, the server is stopping.
        using output = FifoFile.openSync(outPath, { access: "read", nonblocking: true, uid });
        const sink = new Uint8Array(65536);
        while (output.readSync(sink)) { /* drain so the parked write completes */ }
      } catch { /* the reader left meanwhile: the write has failed with EPIPE */ }
    }
  }
}
