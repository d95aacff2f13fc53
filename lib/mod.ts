/**
 * Named-pipe (FIFO) inter-process communication for Deno.
 *
 * - {@linkcode serveEcho} runs the echo server: a plain `NAME.in`/`NAME.out` pair for
 *   shells and the seed's programs, plus private sessions for many concurrent clients.
 * - {@linkcode connect} and {@linkcode listen} are the client and server ends of sessions.
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
export * from "./connect.ts";
export * from "./echoer.ts";
export * from "./fifo_file.ts";
export * from "./framing.ts";
export * from "./listen.ts";
export * from "./make_fifo.ts";
export * from "./printable.ts";
export * from "./serve_echo.ts";
export type { PlainEngineKind } from "./plain_engine.ts";
