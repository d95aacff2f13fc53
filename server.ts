/**
 * The echo server: reads `DIR/NAME.in`, echoes every message to `DIR/NAME.out`, stops on
 * the exit word, SIGINT or SIGTERM, and removes its FIFOs on the way out.
 *
 *     deno run --allow-read=/tmp --allow-write=/tmp --allow-run=mkfifo server.ts [options]
 *
 * @module
 */
import {
  COMMON_OPTIONS,
  parseCommandLine,
  parseCommonOptions,
  reportFailure,
} from "./lib/cli/cli_support.ts";
import { serveEcho } from "./lib/serve_echo.ts";

const USAGE =
  `Usage: deno run --allow-read=/tmp --allow-write=/tmp --allow-run=mkfifo server.ts [options]

Echoes every message that arrives on DIR/NAME.in to DIR/NAME.out.

Options:
  --dir DIR              directory of the FIFOs (default /tmp)
  --name NAME            FIFO base name: NAME.in, NAME.out (default pipe)
  --framing MODE         lines | length | raw (default lines)
  --max-message BYTES    largest message accepted (default 1048576)
  --exit-word WORD       a message equal to WORD stops the server; '' disables (default exit)
  --no-sessions          serve the plain pair only (no DIR/NAME.ctl)
  --quiet                no "received msg" line per message
  --verbose              print the stack trace of an error
  -h, --help             show this help

Exit status: 0 stopped normally, 1 runtime error, 2 usage error.`;

/** What a newcomer needs to see first: where it listens, how, and how to stop it. */
function startLine(
  paths: { input: string; output: string; control: string },
  values: { framing?: string; "exit-word"?: string; "no-sessions"?: boolean },
): string {
  const sessions = values["no-sessions"] ? "" : ` (sessions: ${paths.control})`;
  const exitWord = values["exit-word"] ?? "exit";
  const stop = exitWord ? `Ctrl-C or the message "${exitWord}"` : "Ctrl-C";
  return `server: ${paths.input} -> ${paths.output}${sessions}, ` +
    `framing ${values.framing ?? "lines"}; stop: ${stop}`;
}

async function main(args: string[]): Promise<number> {
  let dir = "/tmp";
  try {
    const { values } = parseCommandLine(args, {
      ...COMMON_OPTIONS,
      "no-sessions": { type: "boolean" },
      quiet: { type: "boolean" },
    });
    if (values.help) {
      console.log(USAGE);
      return 0;
    }
    dir = values.dir ?? dir;
    const controller = new AbortController();
    const stop = () => controller.abort();
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
    try {
      const server = await serveEcho({
        dir,
        ...parseCommonOptions(values),
        logMessages: !values.quiet,
        sessions: !values["no-sessions"],
        signal: controller.signal,
      });
      if (!values.quiet) console.log(startLine(server.paths, values));
      const stats = await server.finished;
      const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? "" : "s"}`;
      console.log(
        `server stopped: ${plural(stats.messages, "message")}, ${plural(stats.bytes, "byte")}, ` +
          `${plural(stats.clients + stats.sessions, "client")} (${stats.sessions} in sessions), ` +
          `${(stats.durationMs / 1000).toFixed(2)} s`,
      );
      return 0;
    } finally {
      Deno.removeSignalListener("SIGINT", stop);
      Deno.removeSignalListener("SIGTERM", stop);
    }
  } catch (error) {
    return reportFailure("server.ts", error, dir, args.includes("--verbose"));
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
