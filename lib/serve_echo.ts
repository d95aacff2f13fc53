import { currentUid } from "./current_uid.ts";
import { FifoFile, isServed } from "./fifo_file.ts";
import { DEFAULT_MAX_MESSAGE, FrameDecoder, type Framing } from "./framing.ts";
import { makeFifo, removeFifo } from "./make_fifo.ts";
import { PlainEngine, type PlainEngineKind } from "./plain_engine.ts";
import { Echoer } from "./echoer.ts";
import { type HubSession, SessionHub } from "./session_hub.ts";
import { checkServerDir, serverPlace } from "./server_place.ts";
import { assertStillOurs, startHub } from "./start_hub.ts";
import { assertMkfifoAllowed } from "./mkfifo_permission.ts";
import { writeStdoutSync } from "./write_stdout.ts";

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
   * Where the plain pair's echo loop runs: `worker` (blocking I/O on its own thread, the
   * fast path; needs read access to this module's directory), `async` (on the event loop)
   * or `auto` (`worker` when permitted).
   *
   * @default {"auto"}
   */
  engine?: PlainEngineKind;
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

/** What serveEcho() does to a server that users must not. */
let serverInternals: {
  create(paths: EchoServerPaths, created: [string, Deno.FileInfo][], anchor: FifoFile): EchoServer;
  start(server: EchoServer, engine: PlainEngine, hub: SessionHub | undefined): void;
  countSession(server: EchoServer, messages: number, bytes: number): void;
};

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
  #created: [string, Deno.FileInfo][];
  #anchor: FifoFile;
  #engine: PlainEngine | undefined;
  #hub: SessionHub | undefined;
  #sessionTotals = { messages: 0, bytes: 0 };
  #started = performance.now();
  #closing: Promise<EchoStats> | undefined;
  #settle: { resolve(stats: EchoStats): void; reject(error: Error): void };
  // An error a handler has already dealt with (defaultPrevented) does not end the process.
  #removeSync = (event: Event) => event.defaultPrevented || this.#removeFifos();

  static {
    serverInternals = {
      create: (paths, created, anchor) => new EchoServer(token, paths, created, anchor),
      start: (server, engine, hub) => {
        server.#engine = engine;
        server.#hub = hub;
      },
      countSession: (server, messages, bytes) => {
        server.#sessionTotals.messages += messages;
        server.#sessionTotals.bytes += bytes;
      },
    };
  }

  private constructor(
    key: typeof token,
    paths: EchoServerPaths,
    created: [string, Deno.FileInfo][],
    anchor: FifoFile,
  ) {
    if (key !== token) throw new TypeError("Illegal constructor: use serveEcho()");
    this.paths = paths;
    this.#created = created;
    this.#anchor = anchor;
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
   * @param error The fatal error that ends the server, if any: `finished` rejects with it.
   * @returns The final stats.
   */
  close(error?: Error): Promise<EchoStats> {
    this.#closing ??= (async () => {
      try {
        await Promise.all([this.#engine?.stop(), this.#hub?.stop()]);
      } finally {
        this.#anchor.close();
        this.#removeFifos();
        for (const event of EXIT_EVENTS) globalThis.removeEventListener(event, this.#removeSync);
      }
      const stats = this.stats;
      if (error) this.#settle.reject(error);
      else this.#settle.resolve(stats);
      return stats;
    })();
    return this.#closing;
  }

  #removeFifos(): void {
    for (const [path, info] of this.#created) removeFifo(path, info);
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
  serverInternals.countSession(server, echoer.messages - messages, echoer.bytes - echoed);
  session.send(reply);
  if (echoer.failure) session.close(`Dropped session ${session.id}: ${echoer.failure.message}`);
  if (echoer.exitRequested) void server.close();
}

/**
 * Serves the echo on `DIR/NAME.in` → `DIR/NAME.out`.
 *
 * Creates both FIFOs (mode `0600`), replacing stale ones a dead server left behind but
 * refusing anything else at their paths, and refusing to start where a live server is
 * serving. Messages are echoed byte-exact on a worker thread; clients come and go.
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
  const created: [string, Deno.FileInfo][] = [];
  let anchor: FifoFile | undefined;
  try {
    created.push([paths.output, await makeFifo(paths.output, { replace: true, uid })]);
    // Held for the server's whole life: a reader that never reads, so clients can open
    // the input while the engine is between two clients, and a second server sees us.
    // Opened before the FIFO gets its public name: if the path is there, so is a reader.
    const input = await makeFifo(paths.input, {
      replace: true,
      uid,
      beforePublish: (staging) => {
        anchor = FifoFile.openSync(staging, { access: "read", nonblocking: true, uid });
      },
    });
    created.push([paths.input, input]);
  } catch (error) {
    anchor?.close();
    for (const [path, info] of created) removeFifo(path, info);
    throw error;
  }
  const server = serverInternals.create(paths, created, anchor!);
  const onClientError = options.onClientError ?? ((message: string) => console.error(message));
  const logMessages = options.logMessages ?? false;
  const echoerOptions = { maxMessage, exitWord, logMessages };
  const engine = new PlainEngine(
    { inPath: paths.input, outPath: paths.output, framing, maxMessage, exitWord, logMessages, uid },
    {
      onExitWord: () => void server.close(),
      onClientError,
      onFatal: (error) => void server.close(error),
    },
    options.engine,
  );
  let hub: SessionHub | undefined;
  if (options.sessions ?? true) {
    hub = new SessionHub({ dir, name, framing, maxMessage, uid }, {
      onOpen: (session) => session.state = new Echoer(framing, echoerOptions),
      onData: (session, bytes) => echoSession(server, session, bytes, logMessages),
      onClose: () => {},
      onError: onClientError,
      onFatal: (error) => void server.close(error),
    });
  }
  serverInternals.start(server, engine, hub);
  try {
    if (hub) created.push([paths.control, await startHub(hub, paths.control, uid)]);
    assertStillOurs(created);
  } catch (error) {
    await server.close(error as Error).catch(() => {});
    throw error;
  }
  // A signal that fired while we were starting has no listener to tell: check it too.
  if (options.signal?.aborted) void server.close();
  else options.signal?.addEventListener("abort", () => void server.close(), { once: true });
  return server;
}
