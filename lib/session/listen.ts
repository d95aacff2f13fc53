import { currentUid } from "../fifo/current_uid.ts";
import { isServed } from "../fifo/fifo_file.ts";
import {
  DEFAULT_MAX_MESSAGE,
  encodeFrame,
  FrameDecoder,
  type Framing,
} from "../framing/framing.ts";
import { FifoKeeper } from "../fifo/fifo_keeper.ts";
import { checkServerDir, serverPlace } from "../fifo/server_place.ts";
import { type HubSession, SessionHub } from "./session_hub.ts";
import { assertStillOurs, startHub } from "./start_hub.ts";
import { messageReadable, messageWritable } from "./message_streams.ts";
import { assertMkfifoAllowed } from "../fifo/mkfifo_permission.ts";

/** Options for {@linkcode listen}. */
export interface ListenOptions {
  /**
   * The directory of the request FIFO and the clients' session directories.
   *
   * @default {"/tmp"}
   */
  dir?: string;
  /**
   * The base name: requests arrive on `DIR/NAME.ctl`.
   *
   * @default {"pipe"}
   */
  name?: string;
  /**
   * The framing every client must use.
   *
   * @default {"lines"}
   */
  framing?: Framing;
  /**
   * The largest message accepted; a longer one ends that client's session.
   *
   * @default {1048576}
   */
  maxMessage?: number;
  /**
   * Sessions accepted by the hub but not yet by {@linkcode FifoListener.accept}; a client
   * that arrives when this many wait is refused.
   *
   * @default {128}
   */
  backlog?: number;
  /**
   * Closes the listener and every connection when aborted.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** Options for {@linkcode FifoServerConn.receive} and {@linkcode FifoListener.accept}. */
export interface WaitOptions {
  /**
   * Gives up waiting: the call rejects with the signal's reason, and nothing is lost (the
   * next message or client goes to the next call).
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/** Reply bytes a server's `send()` lets pile up before it waits for the client. */
const SEND_LIMIT = 65536;

/** Waiters served one at a time, in order; an aborted one leaves the line. */
class WaitLine<T> {
  #waiting: PromiseWithResolvers<T>[] = [];

  get length(): number {
    return this.#waiting.length;
  }

  wait(signal: AbortSignal | undefined): Promise<T> {
    if (signal?.aborted) return Promise.reject(signal.reason);
    const waiter = Promise.withResolvers<T>();
    this.#waiting.push(waiter);
    if (!signal) return waiter.promise;
    const onAbort = () => {
      const at = this.#waiting.indexOf(waiter);
      if (at >= 0) this.#waiting.splice(at, 1);
      waiter.reject(signal.reason);
    };
    signal.addEventListener("abort", onAbort, { once: true });
    return waiter.promise.finally(() => signal.removeEventListener("abort", onAbort));
  }

  /** Serves the longest waiter; returns whether there was one. */
  serve(value: T): boolean {
    const waiter = this.#waiting.shift();
    waiter?.resolve(value);
    return waiter !== undefined;
  }

  serveAll(value: T): void {
    for (const waiter of this.#waiting.splice(0)) waiter.resolve(value);
  }
}

const token = Symbol("fifo internal");

/** What listen() does to a connection that users must not. */
let serverConnInternals: {
  create(session: HubSession, framing: Framing, maxMessage: number, window: number): FifoServerConn;
  push(conn: FifoServerConn, bytes: Uint8Array): void;
  end(conn: FifoServerConn): void;
};

/**
 * One client's session, on the server side: its messages in, its replies out, with
 * backpressure both ways.
 *
 * A client may have at most {@linkcode FifoServerConn.window} bytes unread by this server:
 * its `send()` waits beyond that, so a server that does not read never holds more. This
 * side's {@linkcode FifoServerConn.send} waits while the client is not reading its
 * replies.
 *
 * Permissions: those of {@linkcode listen}, which makes it.
 *
 * @example Echo every message back, through the streams
 * ```ts
 * import { connect, listen } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await using listener = await listen({ dir });
 *   const served = listener.accept().then((conn) => conn!.readable.pipeTo(conn!.writable));
 *   await using conn = await connect({ dir });
 *   await conn.send("ping");
 *   assert.equal(new TextDecoder().decode((await conn.receive())!), "ping");
 *   await conn.close();
 *   await served;
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class FifoServerConn implements AsyncIterable<Uint8Array> {
  /** The session id. */
  readonly id: number;
  /** Request bytes a client may have sent and this server not yet read. */
  readonly window: number;
  #session: HubSession;
  #framing: Framing;
  #decoder: FrameDecoder;
  #queue: { message: Uint8Array; wire: number }[] = [];
  #waiters = new WaitLine<Uint8Array | null>();
  #unread = 0;
  #unacked = 0;
  #ended = false;
  #readable: ReadableStream<Uint8Array> | undefined;
  #writable: WritableStream<Uint8Array> | undefined;

  static {
    serverConnInternals = {
      create: (session, framing, maxMessage, window) =>
        new FifoServerConn(token, session, framing, maxMessage, window),
      push: (conn, bytes) => conn.#push(bytes),
      end: (conn) => conn.#end(),
    };
  }

  private constructor(
    key: typeof token,
    session: HubSession,
    framing: Framing,
    maxMessage: number,
    window: number,
  ) {
    if (key !== token) throw new TypeError("Illegal constructor: use listen()");
    this.id = session.id;
    this.window = window;
    this.#session = session;
    this.#framing = framing;
    this.#decoder = new FrameDecoder(framing, { maxMessage });
  }

  /** Request bytes received and not yet read: never more than {@linkcode window}. */
  get bufferedBytes(): number {
    return this.#unread;
  }

  #push(bytes: Uint8Array): void {
    this.#unread += bytes.length;
    if (this.#unread > this.window) {
      this.#session.close(
        `Dropped session ${this.id}: ${this.#unread} unread bytes, more than its window of ` +
          `${this.window} (the client ignores backpressure)`,
      );
      return;
    }
    try {
      this.#decoder.push(bytes, (wire, payload) => {
        const message = payload.slice();
        if (this.#waiters.serve(message)) this.#consumed(wire.length);
        else this.#queue.push({ message, wire: wire.length });
      });
    } catch (error) {
      this.#session.close(`Dropped session ${this.id}: ${(error as Error).message}`);
    }
  }

  /** Gives the client back its credit: in batches, and always once nothing is queued. */
  #consumed(wire: number): void {
    this.#unread -= wire;
    this.#unacked += wire;
    if (this.#unacked >= this.window / 4 || !this.#queue.length) {
      this.#session.sendAck(this.#unacked);
      this.#unacked = 0;
    }
  }

  #end(): void {
    this.#ended = true;
    this.#waiters.serveAll(null);
  }

  /**
   * Receives the client's next message. Calls may overlap: each gets its own message, in
   * the order the calls were made.
   *
   * @param options An `AbortSignal` to stop waiting.
   * @returns The payload, or `null` once the session has ended or is closed.
   */
  receive(options: WaitOptions = {}): Promise<Uint8Array | null> {
    const next = this.#queue.shift();
    if (next) {
      this.#consumed(next.wire);
      return Promise.resolve(next.message);
    }
    if (this.#ended) return Promise.resolve(null);
    return this.#waiters.wait(options.signal);
  }

  /**
   * Sends a message to this client, framed. Waits while the client has more than 64 KiB
   * of replies unread.
   *
   * @param message The payload; text is UTF-8 encoded.
   * @throws {Deno.errors.BadResource} When the session has ended.
   */
  async send(message: Uint8Array | string): Promise<void> {
    if (this.#session.closed) {
      throw new Deno.errors.BadResource(`Cannot send: session ${this.id} has ended`);
    }
    const bytes = typeof message === "string" ? new TextEncoder().encode(message) : message;
    this.#session.send(encodeFrame(this.#framing, bytes));
    await this.#session.whenDrained(SEND_LIMIT);
  }

  /**
   * The client's messages as a stream; cancelling it closes the session. See the
   * {@linkcode FifoServerConn} example.
   */
  get readable(): ReadableStream<Uint8Array> {
    return this.#readable ??= messageReadable(() => this.receive(), () => this.close());
  }

  /**
   * A stream of messages to send; closing it ends the session. See the
   * {@linkcode FifoServerConn} example.
   */
  get writable(): WritableStream<Uint8Array> {
    return this.#writable ??= messageWritable(
      (message) => this.send(message),
      () => this.close(),
    );
  }

  /** Ends the session; the client sees the end of its stream, pending receives `null`. */
  close(): void {
    this.#queue = [];
    this.#session.close();
    this.#end();
  }

  /** Receives messages until the session ends. */
  async *[Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    for (;;) {
      const message = await this.receive();
      if (message === null) return;
      yield message;
    }
  }
}

/** What listen() does to a listener that users must not. */
let listenerInternals: {
  create(path: string, keeper: FifoKeeper, backlog: number): FifoListener;
  attach(listener: FifoListener, hub: SessionHub): void;
  offer(listener: FifoListener, conn: FifoServerConn): boolean;
};

/**
 * Accepts sessions on `DIR/NAME.ctl`; iterate it for connections.
 *
 * Permissions: those of {@linkcode listen}, which makes it.
 *
 * @example Give up waiting for a client
 * ```ts
 * import { listen } from "./listen.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir();
 * try {
 *   await using listener = await listen({ dir });
 *   const signal = AbortSignal.timeout(50);
 *   await assert.rejects(listener.accept({ signal }), { name: "TimeoutError" });
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 */
export class FifoListener implements AsyncIterable<FifoServerConn>, AsyncDisposable {
  /** The request FIFO. */
  readonly path: string;
  #hub: SessionHub | undefined;
  #keeper: FifoKeeper;
  #backlog: number;
  #incoming: FifoServerConn[] = [];
  #waiters = new WaitLine<FifoServerConn | null>();
  #closed = false;
  #closing: Promise<void> | undefined;

  static {
    listenerInternals = {
      create: (path, keeper, backlog) => new FifoListener(token, path, keeper, backlog),
      attach: (listener, hub) => listener.#hub = hub,
      offer: (listener, conn) => listener.#offer(conn),
    };
  }

  private constructor(key: typeof token, path: string, keeper: FifoKeeper, backlog: number) {
    if (key !== token) throw new TypeError("Illegal constructor: use listen()");
    this.path = path;
    this.#keeper = keeper;
    this.#backlog = backlog;
  }

  #offer(conn: FifoServerConn): boolean {
    if (this.#closed) return false;
    if (this.#waiters.serve(conn)) return true;
    if (this.#incoming.length >= this.#backlog) return false;
    this.#incoming.push(conn);
    return true;
  }

  /**
   * Waits for the next client. Calls may overlap: each gets its own client, in the order
   * the calls were made.
   *
   * @param options An `AbortSignal` to stop waiting.
   * @returns Its connection, or `null` once the listener is closed.
   */
  accept(options: WaitOptions = {}): Promise<FifoServerConn | null> {
    if (this.#closed) return Promise.resolve(null);
    const next = this.#incoming.shift();
    if (next) return Promise.resolve(next);
    return this.#waiters.wait(options.signal);
  }

  /** Stops accepting, ends every session and removes the request FIFO. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#waiters.serveAll(null);
      this.#incoming = []; // their sessions end with the hub
      await this.#hub?.stop();
      this.#keeper.remove();
    })();
    return this.#closing;
  }

  /** Accepts connections until the listener is closed. */
  async *[Symbol.asyncIterator](): AsyncIterator<FifoServerConn> {
    for (;;) {
      const conn = await this.accept();
      if (conn === null) return;
      yield conn;
    }
  }

  /** Closes the listener (for `await using`). */
  [Symbol.asyncDispose](): Promise<void> {
    return this.close();
  }
}

/**
 * Listens for session clients on `DIR/NAME.ctl`, the way `Deno.listen` listens on a
 * socket: each client that {@linkcode connect}s gets a private connection.
 *
 * Permissions: `--allow-read` and `--allow-write` for `dir`, `--allow-run=mkfifo`.
 *
 * @example A server that answers in upper case
 * ```ts
 * import { connect, listen } from "../mod.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir(); // a private place: /tmp is shared
 * try {
 *   await using listener = await listen({ dir, name: "upper" });
 *   (async () => {
 *     for await (const conn of listener) {
 *       for await (const message of conn) {
 *         await conn.send(new TextDecoder().decode(message).toUpperCase());
 *       }
 *     }
 *   })();
 *   await using conn = await connect({ dir, name: "upper" });
 *   await conn.send("hello");
 *   assert.equal(new TextDecoder().decode((await conn.receive())!), "HELLO");
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @param options Where to listen and how messages are framed.
 * @returns The listener.
 */
export async function listen(options: ListenOptions = {}): Promise<FifoListener> {
  const { dir, name } = serverPlace(options);
  const framing = options.framing ?? "lines";
  const maxMessage = options.maxMessage ?? DEFAULT_MAX_MESSAGE;
  const backlog = options.backlog ?? 128;
  new FrameDecoder(framing, { maxMessage }); // validates both
  if (!Number.isSafeInteger(backlog) || backlog < 0) {
    throw new TypeError(`Invalid backlog "${backlog}": expected a whole number`);
  }
  assertMkfifoAllowed(`Cannot listen in "${dir}"`);
  checkServerDir(dir);
  const uid = currentUid(dir);
  const path = `${dir}/${name}.ctl`;
  if (isServed(path, uid)) {
    throw new Deno.errors.AddrInUse(`Cannot listen on "${path}": a server is already listening`);
  }
  const conns = new Map<HubSession, FifoServerConn>();
  // Assigned once the request FIFO exists (the hub's callbacks need it, and it needs them).
  // deno-lint-ignore prefer-const
  let listener: FifoListener | undefined;
  const hub = new SessionHub({ dir, name, framing, maxMessage, uid, ack: true }, {
    onOpen(session) {
      const conn = serverConnInternals.create(session, framing, maxMessage, hub.window);
      conns.set(session, conn);
      if (!listener || !listenerInternals.offer(listener, conn)) {
        session.close(`Refused session ${session.id}: ${backlog} sessions wait to be accepted`);
      }
    },
    onData: (session, bytes) => {
      const conn = conns.get(session);
      if (conn) serverConnInternals.push(conn, bytes);
    },
    onClose(session) {
      const conn = conns.get(session);
      if (conn) serverConnInternals.end(conn);
      conns.delete(session);
    },
    onError: (message) => console.error(message),
    onFatal(error) {
      console.error(`Stopped listening on "${path}": ${error.message}`);
      void listener?.close();
    },
  });
  FifoKeeper.sweep(dir, name, uid);
  const keeper = FifoKeeper.create(dir, name, uid);
  try {
    await startHub(hub, keeper);
  } catch (error) {
    await hub.stop();
    keeper.remove();
    throw error;
  }
  listener = listenerInternals.create(path, keeper, backlog);
  listenerInternals.attach(listener, hub);
  try {
    assertStillOurs(keeper);
  } catch (error) {
    await listener.close();
    throw error;
  }
  if (options.signal?.aborted) void listener.close();
  else options.signal?.addEventListener("abort", () => void listener.close(), { once: true });
  return listener;
}
