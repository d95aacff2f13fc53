/**
 * The echo client: by default sends `msg 1` .. `msg 10` a second apart and prints the
 * echoes, as the seed article's client does, then sends the exit word.
 *
 *     deno run --allow-read=/tmp --allow-write=/tmp --allow-run=mkfifo client.ts [options]
 *
 * @module
 */
import {
  COMMON_OPTIONS,
  parseCommandLine,
  parseCommonOptions,
  parseCount,
  reportFailure,
  UsageError,
} from "./lib/cli/cli_support.ts";
import { concatBytes } from "./lib/framing/concat_bytes.ts";
import { connect, type FifoConn } from "./lib/session/connect.ts";
import { filter } from "./lib/cli/filter.ts";
import { printable } from "./lib/framing/printable.ts";
import { writeStdoutSync } from "./lib/framing/write_stdout.ts";

const USAGE =
  `Usage: deno run --allow-read=/tmp --allow-write=/tmp --allow-run=mkfifo client.ts [options]

Talks to the echo server on DIR/NAME.*: a private session when the server offers one,
else the plain NAME.in/NAME.out pair.

Modes (default: send "msg 1" .. "msg N", printing each echo, then the exit word):
  --send TEXT            send one message, print only the reply, exit (the exit word
                         has none: it stops the server, and prints nothing)
  --stdin                every line of standard input is a message; print the replies
                         (a filter: bytes out = bytes in)

Options:
  --count N              messages in the default mode (default 10)
  --interval MS          pause between them (default 1000)
  --no-exit              do not send the exit word at the end
  --exit-word WORD       the word that stops the server (default exit)
  --dir DIR              directory of the FIFOs (default /tmp)
  --name NAME            FIFO base name (default pipe)
  --framing MODE         lines | length | raw; must match the server (default lines)
  --max-message BYTES    largest reply accepted (default 1048576)
  --timeout MS           give up on a server that does not answer (default 5000)
  --shared               use the plain pair even where sessions are offered
  --strict               refuse plain-pair FIFOs that other users can read (a warning
                         otherwise, e.g. for the seed's server under umask 022)
  --verbose              print the stack trace of an error
  -h, --help             show this help

Exit status: 0 done, 1 runtime error (no server, timeout, ...), 2 usage error.`;

/** Waits for the next reply, treating the end of the stream as an error. */
async function nextReply(conn: FifoConn): Promise<Uint8Array> {
  const reply = await conn.receive();
  if (reply === null) {
    // A session is told why; the plain pair has no way back, so name the usual causes.
    const why = conn.closeReason
      ? `: ${conn.closeReason}`
      : conn.mode === "shared"
      ? ` (its log says why: often a message over its --max-message, or a --framing other than "${conn.framing}")`
      : "";
    throw new Error(`The server closed the connection${why}`);
  }
  return reply;
}

async function runDefault(conn: FifoConn, count: number, interval: number, exitWord?: string) {
  for (let i = 1; i <= count; i++) {
    const message = `msg ${i}`;
    await conn.send(message);
    console.log(`sent msg: ${message}`);
    console.log(`received msg: ${printable(await nextReply(conn))}`);
    if (i < count && interval > 0) await new Promise((r) => setTimeout(r, interval));
  }
  if (exitWord) await conn.send(exitWord);
}

async function main(args: string[]): Promise<number> {
  let dir = "/tmp";
  try {
    const { values } = parseCommandLine(args, {
      send: { type: "string" },
      stdin: { type: "boolean" },
      count: { type: "string" },
      interval: { type: "string" },
      "no-exit": { type: "boolean" },
      timeout: { type: "string" },
      shared: { type: "boolean" },
      strict: { type: "boolean" },
      ...COMMON_OPTIONS,
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    if (values.send !== undefined && values.stdin) {
      throw new UsageError("Options --send and --stdin cannot be combined");
    }
    dir = values.dir ?? dir;
    const count = parseCount("--count", values.count, 0) ?? 10;
    const interval = parseCount("--interval", values.interval, 0) ?? 1000;
    const common = parseCommonOptions(values);
    const maxMessage = common.maxMessage ?? 1 << 20;
    const exitWord = common.exitWord ?? "exit";
    const timeout = parseCount("--timeout", values.timeout, 1);
    await using conn = await connect({
      dir,
      name: common.name,
      framing: common.framing,
      maxMessage,
      timeout,
      mode: values.shared ? "shared" : "auto",
      strict: values.strict,
      onWarning: (message) => console.error(`warning: ${message}`),
    });
    if (values.send !== undefined && exitWord && values.send === exitWord) {
      // The exit word has no echo: the server stops, and the connection ends (a server
      // with another exit word echoes it, and that is printed).
      await conn.send(values.send);
      const reply = await conn.receive();
      if (reply) writeStdoutSync(concatBytes([reply, Uint8Array.of(0x0a)]));
    } else if (values.send !== undefined) {
      await conn.send(values.send);
      // The reply's bytes as they came: never decoded and encoded again.
      writeStdoutSync(concatBytes([await nextReply(conn), Uint8Array.of(0x0a)]));
    } else if (values.stdin) {
      await filter(conn, { timeout });
    } else {
      await runDefault(conn, count, interval, values["no-exit"] ? undefined : exitWord);
    }
    return 0;
  } catch (error) {
    if (error instanceof Deno.errors.TimedOut || error instanceof Deno.errors.NotFound) {
      (error as Error).message += " (is the server running?)";
    }
    return reportFailure("client.ts", error, dir, args.includes("--verbose"));
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
