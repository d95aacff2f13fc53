import { currentUid } from "./fifo/current_uid.ts";
import { isServed } from "./fifo/fifo_file.ts";
import { FifoKeeper } from "./fifo/fifo_keeper.ts";
import { DEFAULT_MAX_MESSAGE, FrameDecoder, type Framing } from "./framing/framing.ts";
import { PlainEngine } from "./plain/plain_engine.ts";
import { Echoer } from "./framing/echoer.ts";
import { type HubSession, SessionHub } from "./session/session_hub.ts";
import { checkServerDir, serverPlace } from "./fifo/server_place.ts";
import { assertStillOurs, startHub } from "./session/start_hub.ts";
import { assertMkfifoAllowed } from "./fifo/mkfifo_permission.ts";
import { writeStdoutSync } from "./framing/write_stdout.ts";

/** Options for {@linkcode serveEcho}. */
export interface EchoServerOptions {
  /**
   * The directory the FIFOs live in; it must be a real directory, not a symlink.
   *
   * @default {"/tmp"}
   */
  dir?: string;
  /**
   * The FIFOs' base name: the server reads `NAME.in` and writes `NAME.out`.
   *
   * @default {"pipe"}
   */
  name?: string;
  /**
   * How messages are cut out of the stream.
   *
   * @default {"lines"}
   */
  framing?: Framing;
  /**
   * The largest message accepted, in bytes; a longer one ends that client's stream.
   *
   * @default {1048576}
   */
  maxMessage?: number;
  /**
   * A message equal to this word stops the server; `""` disables it.
   *
   * @default {"exit"}
   */
  exitWord?: string;
  /**
   * Print `received msg: …` to standard output for every message.
   *
   * @default {false}
   */
  logMessages?: boolean;
  /**
   * Called for every error that ends one client's stream but not the server.
   *
   * @default {console.error}
   */
  onClientError?: (message: string) => void;
  /**
   * Also serve private sessions on `DIR/NAME.ctl`, so that many clients can talk at once
   * (see README "Sessions").
   *
   * @default {true}
   */
  sessions?: boolean;
  /**
   * Stops the server when aborted.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** What a server did, reported when it stops. */
export interface EchoStats {
  /** Messages echoed. */
  messages: number;
  /** Payload bytes echoed. */
  bytes: number;
  /** Clients served on the plain pair. */
  clients: number;
  /** Sessions served. */
  sessions: number;
  /** Milliseconds from start to stop. */
  durationMs: number;
}

/** The paths a server owns. */
export interface EchoServerPaths {
  /** Where clients write: `DIR/NAME.in`. */
  input: string;
  /** Where clients read: `DIR/NAME.out`. */
  output: string;
  /** Where session clients send requests: `DIR/NAME.ctl`. */
  control: string;
}

const EXIT_EVENTS = ["unload", "error", "unhandledrejection"] as const;
/** How often a server looks for removed or replaced public names, besides each client. */
const NAME_CHECK_MS = 5000;
/** How long a stop waits for a call parked on a FIFO that nobody can reach any more. */
const STOP_DEADLINE_MS = 1500;

/** Checks the options a server needs, throwing `TypeError` with the offending value. */
function validate(options: EchoServerOptions) {
  const { dir, name } = serverPlace(options);
  const framing = options.framing ?? "lines";
  const maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
  const exitWord = options.exitWord ?? "exit";
  new FrameDecoder(framing, { maxMessage }); // validates both, as listen() and connect() do
  if (exitWord.includes("\n")) {
    throw new TypeError(`Invalid exit word "${exitWord}": it cannot contain a newline`);
  }
  return { dir, name, framing, maxMessage, exitWord };
}

const token = Symbol("fifo internal");
let createServer: (paths: EchoServerPaths, keeper: FifoKeeper) => EchoServer;
let startServer: (server: EchoServer, engine: PlainEngine, hub?: SessionHub) => void;
let watchNames: (server: EchoServer, onNote: (message: string) => void) => void;
let checkNames: (server: EchoServer, onNote: (message: string) => void) => void;
let countSession: (server: EchoServer, messages: number, bytes: number) => void;

/**
 * A running echo server. Stop it with {@linkcode EchoServer.close}, the exit word, or the
 * `signal` option; its FIFOs are removed on every way out.
 *
 * Permissions: those of {@linkcode serveEcho}, which makes it.
 *
 * @example Stop a server and read its stats
 * ```ts
 * import { serveEcho } from "./serve_echo.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir(); // a private place: /tmp is shared
 * try {
 *   const server = await serveEcho({ dir, name: "demo" });
 *   assert.equal(server.paths.input, `${dir}/demo.in`);
 *   const stats = await server.close(); // also what `server.finished` resolves with
 *   assert.equal(stats.messages, 0);
 *   assert.deepEqual([...Deno.readDirSync(dir)], []); // its FIFOs are gone
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class EchoServer implements AsyncDisposable {
  /** The FIFOs it serves. */
  readonly paths: EchoServerPaths;
  /** Settles when the server has stopped: with its stats, or the fatal error. */
  readonly finished: Promise<EchoStats>;
  #keeper: FifoKeeper;
  #engine: PlainEngine | undefined;
  #hub: SessionHub | undefined;
  #nameTimer: ReturnType<typeof setInterval> | undefined;
  #sessionTotals = { messages: 0, bytes: 0 };
  #started = performance.now();
  #closing: Promise<EchoStats> | undefined;
  #settle: { resolve(stats: EchoStats): void; reject(error: Error): void };
  // An error a handler has already dealt with (defaultPrevented) does not end the process.
  #removeSync = (event: Event) => event.defaultPrevented || this.#keeper.remove();

  static {
    createServer = (paths, keeper) => new EchoServer(token, paths, keeper);
    startServer = (server, engine, hub) => {
      server.#engine = engine;
      server.#hub = hub;
    };
    watchNames = (server, onNote) => server.#watchNames(onNote);
    checkNames = (server, onNote) => server.#checkNames(onNote);
    countSession = (server, messages, bytes) => {
      server.#sessionTotals.messages += messages;
      server.#sessionTotals.bytes += bytes;
    };
  }

  private constructor(key: typeof token, paths: EchoServerPaths, keeper: FifoKeeper) {
    if (key !== token) throw new TypeError("Illegal constructor: use serveEcho()");
    this.paths = paths;
    this.#keeper = keeper;
    const { promise, resolve, reject } = Promise.withResolvers<EchoStats>();
    // A server that fails while starting rejects `finished` before anyone could await it:
    // that must not surface as an unhandled rejection (awaiting it still throws).
    promise.catch(() => {});
    this.finished = promise;
    this.#settle = { resolve, reject };
    // Deno.exit() or an uncaught error elsewhere in the program still runs this: no FIFO
    // outlives the process ("unload" does not fire on an uncaught error).
    for (const event of EXIT_EVENTS) globalThis.addEventListener(event, this.#removeSync);
  }

  /** Counters so far. */
  get stats(): EchoStats {
    const plain = this.#engine?.stats ?? { messages: 0, bytes: 0, clients: 0 };
    return {
      messages: plain.messages + this.#sessionTotals.messages,
      bytes: plain.bytes + this.#sessionTotals.bytes,
      clients: plain.clients,
      sessions: this.#hub?.opened ?? 0,
      durationMs: performance.now() - this.#started,
    };
  }

  /**
   * Stops serving, removes the FIFOs and resolves with the final stats.
   *
   * A call parked on a FIFO that someone removed together with the server's private
   * directory can no longer be woken; the stop gives up on it after 1.5 s (the thread
   * stays parked until the process exits).
   *
   * @param error The fatal error that ends the server, if any: `finished` rejects with it.
   * @returns The final stats.
   */
  close(error?: Error): Promise<EchoStats> {
    this.#closing ??= (async () => {
      clearInterval(this.#nameTimer);
      try {
        const stopped = Promise.all([this.#engine?.stop(), this.#hub?.stop()]);
        const deadline = new Promise<void>((resolve) => {
          const timer = setTimeout(resolve, STOP_DEADLINE_MS);
          stopped.finally(() => clearTimeout(timer));
        });
        await Promise.race([stopped, deadline]);
      } finally {
        this.#keeper.remove();
        for (const event of EXIT_EVENTS) globalThis.removeEventListener(event, this.#removeSync);
      }
      const stats = this.stats;
      if (error) this.#settle.reject(error);
      else this.#settle.resolve(stats);
      return stats;
    })();
    return this.#closing;
  }

  /**
   * Checks the public names every {@linkcode NAME_CHECK_MS}: one that vanished is put back
   * (the same FIFO), one that names something else stops the server. (`Deno.watchFs` would
   * save the timer, but it opens files it reports on, and an `open()` of a FIFO blocks.)
   */
  #watchNames(onNote: (message: string) => void): void {
    const timer = setInterval(() => this.#checkNames(onNote), NAME_CHECK_MS);
    Deno.unrefTimer(timer);
    this.#nameTimer = timer;
  }

  /** Compares the public names with our FIFOs once (see `#watchNames`). */
  #checkNames(onNote: (message: string) => void): void {
    if (this.#closing) return;
    for (const { path, problem } of this.#keeper.check()) {
      let reason = "it now names something else";
      if (problem === "missing") {
        try {
          if (this.#keeper.restore(path)) {
            onNote(`Put back "${path}": it had been removed or renamed`);
            continue;
          }
        } catch (error) {
          reason = `it was removed and cannot be put back: ${(error as Error).message}`;
        }
      }
      void this.close(new Error(`Cannot serve on "${path}": ${reason}`));
      return;
    }
  }

  /** Stops the server (for `await using`). */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.close();
  }
}

/** Echoes one piece of a session's stream back to it. */
function echoSession(server: EchoServer, session: HubSession, bytes: Uint8Array, log: boolean) {
  const echoer = session.state as Echoer;
  const [messages, echoed] = [echoer.messages, echoer.bytes];
  const reply = echoer.feed(bytes);
  if (log) {
    const lines = echoer.takeLog();
    if (lines) writeStdoutSync(lines);
  }
  countSession(server, echoer.messages - messages, echoer.bytes - echoed);
  session.send(reply);
  if (echoer.failure) session.close(`Dropped session ${session.id}: ${echoer.failure.message}`);
  if (echoer.exitRequested) void server.close();
}

/**
 * Serves the echo on `DIR/NAME.in` → `DIR/NAME.out`.
 *
 * Creates both FIFOs (mode `0600`), replacing stale ones a dead server left behind but
 * refusing anything else at their paths, and refusing to start where a live server is
 * serving. Messages are echoed byte-exact on a worker thread; clients come and go, in
 * any order of opens. A removed FIFO is put back; one replaced by something else stops
 * the server with an error.
 *
 * Permissions: `--allow-read` and `--allow-write` for `dir`, `--allow-run=mkfifo`.
 *
 * @example Serve a shell client on the plain pair
 * ```ts
 * import { serveEcho } from "./serve_echo.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir(); // a private place: /tmp is shared
 * try {
 *   await using server = await serveEcho({ dir });
 *   // The seed's way: write NAME.in, read NAME.out; "exit" stops the server.
 *   const shell = new Deno.Command("sh", {
 *     args: ["-c", 'cat "$1/pipe.out" & printf "hi\\nexit\\n" > "$1/pipe.in"; wait', "sh", dir],
 *     stdout: "piped",
 *   });
 *   const { stdout } = await shell.output();
 *   assert.equal(new TextDecoder().decode(stdout), "hi\n"); // the exit word is not echoed
 *   assert.equal((await server.finished).clients, 1);
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @param options Where and how to serve.
 * @returns The running server.
 */
export async function serveEcho(options: EchoServerOptions = {}): Promise<EchoServer> {
  const { dir, name, framing, maxMessage, exitWord } = validate(options);
  assertMkfifoAllowed(`Cannot serve in "${dir}"`);
  checkServerDir(dir);
  const uid = currentUid(dir);
  const paths = {
    input: `${dir}/${name}.in`,
    output: `${dir}/${name}.out`,
    control: `${dir}/${name}.ctl`,
  };
  if (isServed(paths.input, uid) || isServed(paths.control, uid)) {
    throw new Deno.errors.AddrInUse(
      `Cannot serve on "${paths.input}": another server is already serving it`,
    );
  }
  FifoKeeper.sweep(dir, name, uid);
  const keeper = FifoKeeper.create(dir, name, uid);
  const server = createServer(paths, keeper);
  const onClientError = options.onClientError ?? ((message: string) => console.error(message));
  const logMessages = options.logMessages ?? false;
  try {
    const output = await keeper.add("out");
    const input = await keeper.add("in");
    const engine = new PlainEngine(
      {
        input,
        output,
        outputName: paths.output,
        framing,
        maxMessage,
        exitWord,
        logMessages,
        uid,
      },
      {
        onExitWord: () => void server.close(),
        onClient: () => checkNames(server, onClientError),
        onClientError,
        onFatal: (error) => void server.close(error),
      },
    );
    let hub: SessionHub | undefined;
    if (options.sessions ?? true) {
      const echoerOptions = { maxMessage, exitWord, logMessages };
      hub = new SessionHub({ dir, name, framing, maxMessage, uid }, {
        onOpen: (session) => {
          session.state = new Echoer(framing, echoerOptions);
          checkNames(server, onClientError);
        },
        onData: (session, bytes) => echoSession(server, session, bytes, logMessages),
        onClose: () => {},
        onError: onClientError,
        onFatal: (error) => void server.close(error),
      });
    }
    startServer(server, engine, hub);
    if (hub) await startHub(hub, keeper);
    assertStillOurs(keeper);
  } catch (error) {
    await server.close(error as Error).catch(() => {});
    throw error;
  }
  watchNames(server, onClientError);
  // A signal that fired while we were starting has no listener to tell: check it too.
  if (options.signal?.aborted) void server.close();
  else options.signal?.addEventListener("abort", () => void server.close(), { once: true });
  return server;
}
