import { currentUid } from "./current_uid.ts";
import { isServed } from "./fifo_file.ts";
import { DEFAULT_MAX_MESSAGE, encodeFrame, FrameDecoder, type Framing } from "./framing.ts";
import { makeFifo, removeFifo } from "./make_fifo.ts";
import { checkServerDir, serverPlace } from "./server_place.ts";
import { type HubSession, SessionHub } from "./session_hub.ts";

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
   * Closes the listener and every connection when aborted.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
}

/**
 * One client's session, on the server side: its messages in, its replies out.
 *
 * Sending never blocks the server: replies the client does not read yet are queued, and a
 * client that lets too many pile up is dropped.
 *
 * Permissions: those of {@linkcode listen}, which makes it.
 *
 * @example Usage
 * ```ts ignore
 * import { listen } from "./listen.ts";
 * await using listener = await listen({ name: "echo" });
 * const conn = (await listener.accept())!;
 * for await (const message of conn) conn.send(message);
 * ```
 */
export class FifoServerConn implements AsyncIterable<Uint8Array> {
  /** The session id. */
  readonly id: number;
  #session: HubSession;
  #framing: Framing;
  #decoder: FrameDecoder;
  #queue: Uint8Array[] = [];
  #waiter: PromiseWithResolvers<void> | undefined;
  #ended = false;

  /** @internal Made by {@linkcode FifoListener}. */
  constructor(session: HubSession, framing: Framing, maxMessage: number) {
    this.id = session.id;
    this.#session = session;
    this.#framing = framing;
    this.#decoder = new FrameDecoder(framing, { maxMessage });
  }

  /** @internal */
  push(bytes: Uint8Array): void {
    try {
      this.#decoder.push(bytes, (_, payload) => this.#queue.push(payload.slice()));
    } catch (error) {
      this.#session.close(`Dropped session ${this.id}: ${(error as Error).message}`);
    }
    this.#waiter?.resolve();
  }

  /** @internal */
  end(): void {
    this.#ended = true;
    this.#waiter?.resolve();
  }

  /**
   * Receives the client's next message.
   *
   * @returns The payload, or `null` once the session has ended.
   */
  async receive(): Promise<Uint8Array | null> {
    while (!this.#queue.length && !this.#ended) {
      this.#waiter = Promise.withResolvers<void>();
      await this.#waiter.promise;
      this.#waiter = undefined;
    }
    return this.#queue.shift() ?? null;
  }

  /**
   * Sends a message to this client, framed.
   *
   * @param message The payload; text is UTF-8 encoded.
   */
  send(message: Uint8Array | string): void {
    const bytes = typeof message === "string" ? new TextEncoder().encode(message) : message;
    this.#session.send(encodeFrame(this.#framing, bytes));
  }

  /** Ends the session; the client sees the end of its stream. */
  close(): void {
    this.#session.close();
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

/**
 * Accepts sessions on `DIR/NAME.ctl`; iterate it for connections.
 *
 * Permissions: those of {@linkcode listen}, which makes it.
 *
 * @example Usage
 * ```ts ignore
 * import { listen } from "./listen.ts";
 * await using listener = await listen({ name: "echo", signal: AbortSignal.timeout(60_000) });
 * for await (const conn of listener) console.log(`session ${conn.id}`);
 * ```
 */
export class FifoListener implements AsyncIterable<FifoServerConn>, AsyncDisposable {
  /** The request FIFO. */
  readonly path: string;
  #hub: SessionHub | undefined;
  #created: Deno.FileInfo;
  #incoming: FifoServerConn[] = [];
  #waiter: PromiseWithResolvers<void> | undefined;
  #closed = false;
  #closing: Promise<void> | undefined;

  /** @internal Use {@linkcode listen}. */
  constructor(path: string, created: Deno.FileInfo) {
    this.path = path;
    this.#created = created;
  }

  /** @internal */
  attach(hub: SessionHub): void {
    this.#hub = hub;
  }

  /** @internal */
  offer(conn: FifoServerConn): void {
    this.#incoming.push(conn);
    this.#waiter?.resolve();
  }

  /**
   * Waits for the next client.
   *
   * @returns Its connection, or `null` once the listener is closed.
   */
  async accept(): Promise<FifoServerConn | null> {
    while (!this.#incoming.length && !this.#closed) {
      this.#waiter = Promise.withResolvers<void>();
      await this.#waiter.promise;
      this.#waiter = undefined;
    }
    return this.#incoming.shift() ?? null;
  }

  /** Stops accepting, ends every session and removes the request FIFO. */
  close(): Promise<void> {
    this.#closing ??= (async () => {
      this.#closed = true;
      this.#waiter?.resolve();
      await this.#hub?.stop();
      removeFifo(this.path, this.#created);
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
 * @example Usage
 * ```ts ignore
 * import { listen } from "./listen.ts";
 * await using listener = await listen({ dir: "/tmp", name: "upper" });
 * for await (const conn of listener) {
 *   (async () => {
 *     for await (const message of conn) {
 *       conn.send(new TextDecoder().decode(message).toUpperCase());
 *     }
 *   })();
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
  new FrameDecoder(framing, { maxMessage }); // validates both
  checkServerDir(dir);
  const uid = currentUid(dir);
  const path = `${dir}/${name}.ctl`;
  if (isServed(path, uid)) {
    throw new Deno.errors.AddrInUse(`Cannot listen on "${path}": a server is already listening`);
  }
  const listener = new FifoListener(path, await makeFifo(path, { replace: true, uid }));
  const conns = new Map<HubSession, FifoServerConn>();
  const hub = new SessionHub({ dir, name, framing, maxMessage, uid }, {
    onOpen(session) {
      const conn = new FifoServerConn(session, framing, maxMessage);
      conns.set(session, conn);
      listener.offer(conn);
    },
    onData: (session, bytes) => conns.get(session)?.push(bytes),
    onClose(session) {
      conns.get(session)?.end();
      conns.delete(session);
    },
    onError: (message) => console.error(message),
    onFatal(error) {
      console.error(`Stopped listening on "${path}": ${error.message}`);
      void listener.close();
    },
  });
  listener.attach(hub);
  hub.sweepLeftovers();
  try {
    await hub.start(path);
  } catch (error) {
    await listener.close();
    throw error;
  }
  if (options.signal?.aborted) void listener.close();
  else options.signal?.addEventListener("abort", () => void listener.close(), { once: true });
  return listener;
}
