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
 * @example Usage
 * ```ts ignore
 * import { connect, serveEcho } from "./mod.ts";
 * await using server = await serveEcho({ dir: "/tmp", name: "demo" });
 * await using conn = await connect({ dir: "/tmp", name: "demo" });
 * await conn.send("hello");
 * console.log(new TextDecoder().decode((await conn.receive())!)); // "hello"
 * ```
 *
 * @module
 */
export { connect, type ConnectOptions, FifoConn, type ReceiveOptions } from "./connect.ts";
export { Echoer, type EchoerOptions } from "./echoer.ts";
export { type FifoAccess, FifoFile, type OpenFifoOptions, PIPE_BUF } from "./fifo_file.ts";
export {
  filter,
  type FilterOptions,
  type FilterSink,
  type FilterSource,
  type FilterStats,
} from "./filter.ts";
export {
  DEFAULT_MAX_MESSAGE,
  encodeFrame,
  FrameDecoder,
  type FrameDecoderOptions,
  type Framing,
  FRAMINGS,
  type MessageCallback,
} from "./framing.ts";
export { FifoListener, FifoServerConn, listen, type ListenOptions } from "./listen.ts";
export { makeFifo, type MakeFifoOptions, removeFifo } from "./make_fifo.ts";
export type { PlainEngineKind } from "./plain_engine.ts";
export { printable } from "./printable.ts";
export {
  EchoServer,
  type EchoServerOptions,
  type EchoServerPaths,
  type EchoStats,
  serveEcho,
} from "./serve_echo.ts";
