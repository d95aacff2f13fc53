/**
 * Named-pipe (FIFO) inter-process communication for Deno.
 *
 * - {@linkcode serveEcho} runs the echo server: a plain `NAME.in`/`NAME.out` pair for
 *   shells and the seed's programs, plus private sessions for many concurrent clients.
 * - {@linkcode connect} and {@linkcode listen} are the client and server ends of sessions,
 *   shaped like `Deno.connect` and `Deno.listen`; {@linkcode filter} streams bytes through
 *   a connection and back, as `client.ts --stdin` does.
 * - {@linkcode FifoFile}, {@linkcode makeFifo} and {@linkcode FrameDecoder} are the
 *   building blocks: verified FIFOs, their creation, and message framing.
 *
 * Permissions: `--allow-read` and `--allow-write` for the FIFOs' directory, and
 * `--allow-run=mkfifo` to make FIFOs (servers, and clients' private sessions). Without
 * it, `serveEcho` and `listen` throw `Deno.errors.NotCapable` naming the flag.
 *
 * @example An echo server and a client in one program
 * ```ts
 * // deno run --allow-read=/tmp --allow-write=/tmp --allow-run=mkfifo example.ts
 * import { connect, serveEcho } from "./mod.ts";
 * import assert from "node:assert/strict";
 * const dir = await Deno.makeTempDir(); // a private place: /tmp is shared
 * try {
 *   await using _server = await serveEcho({ dir, name: "demo" });
 *   await using conn = await connect({ dir, name: "demo" });
 *   await conn.send("hello");
 *   assert.equal(new TextDecoder().decode((await conn.receive())!), "hello");
 * } finally {
 *   await Deno.remove(dir, { recursive: true });
 * }
 * ```
 *
 * @module
 */
export { connect, type ConnectOptions, FifoConn, type ReceiveOptions } from "./session/connect.ts";
export { Echoer, type EchoerOptions } from "./framing/echoer.ts";
export { type FifoAccess, FifoFile, type OpenFifoOptions, PIPE_BUF } from "./fifo/fifo_file.ts";
export {
  filter,
  type FilterOptions,
  type FilterSink,
  type FilterSource,
  type FilterStats,
} from "./cli/filter.ts";
export {
  DEFAULT_MAX_MESSAGE,
  encodeFrame,
  FrameDecoder,
  type FrameDecoderOptions,
  type Framing,
  FRAMINGS,
  type MessageCallback,
} from "./framing/framing.ts";
export {
  FifoListener,
  FifoServerConn,
  listen,
  type ListenOptions,
  type WaitOptions,
} from "./session/listen.ts";
export { makeFifo, type MakeFifoOptions, removeFifo } from "./fifo/make_fifo.ts";
export { printable } from "./framing/printable.ts";
export {
  EchoServer,
  type EchoServerOptions,
  type EchoServerPaths,
  type EchoStats,
  serveEcho,
} from "./serve_echo.ts";
