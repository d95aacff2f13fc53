import { fileURLToPath } from "node:url";
import type { Framing } from "./framing.ts";
import { FifoFile } from "./fifo_file.ts";
import { runPlainLoop } from "./plain_loop.ts";

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
  /** `Int32Array` view: `[0]` stop flag, `[1]` messages so far. */
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
 * Runs the plain pair's echo loop (on a worker thread or the event loop) and stops it on
 * request (internal).
 *
 * The loop may be parked in `open`, `read` or `write`; {@linkcode PlainEngine.stop}
 * sets the stop flag and, until the worker confirms, opens the peer ends without blocking,
 * writes one byte it will discard and drains what it is trying to write.
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

  /**
   * Starts the worker.
   *
   * @param config Everything but `control`.
   * @param handlers Where its events go.
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
    if (this.kind === "async") {
      runPlainLoop(config, () => this.#stopping, onEvent).then(
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

  /** Stops the worker, waking it from any blocking call, and waits until it is gone. */
  async stop(): Promise<void> {
    Atomics.store(this.#flags, 0, 1);
    let done = false;
    this.#stopped.then(() => done = true);
    while (!done) {
      this.#wake();
      await Promise.race([this.#stopped, new Promise((r) => setTimeout(r, WAKE_INTERVAL_MS))]);
    }
    this.#worker?.terminate();
  }

  #wake(): void {
    const { inPath, outPath, uid } = this.#config;
    try {
      // A writer arriving releases a parked open; its byte releases a parked read.
      using input = FifoFile.openSync(inPath, { access: "write", nonblocking: true, uid });
      input.tryWrite(new Uint8Array(1));
    } catch { /* no reader: the worker is not parked on the input */ }
    try {
      using output = FifoFile.openSync(outPath, { access: "read", nonblocking: true, uid });
      const sink = new Uint8Array(65536);
      while (output.readSync(sink)) { /* drain so a parked write completes */ }
    } catch { /* gone already */ }
  }
}
