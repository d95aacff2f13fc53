/**
 * What `server.ts` and `client.ts` share: strict option parsing and the error exits.
 * Not part of the public API.
 *
 * @module
 */
import { parseArgs, type ParseArgsConfig } from "node:util";
import { type Framing, FRAMINGS } from "../framing/framing.ts";
import { serverPlace } from "../fifo/server_place.ts";
import { printable } from "../framing/printable.ts";

/** A bad command line: exit status 2. */
export class UsageError extends Error {
  override name = "UsageError";
}

/** Parses `args` strictly: an unknown flag or a missing value is a {@linkcode UsageError}. */
export function parseCommandLine<T extends ParseArgsConfig["options"]>(
  args: string[],
  options: T,
) {
  try {
    return parseArgs({ args, options, strict: true, allowPositionals: false });
  } catch (cause) {
    throw new UsageError((cause as Error).message.replace(/\.$/, ""), { cause });
  }
}

/** The options both CLIs take: where the server is, how it frames, its bounds, help. */
export const COMMON_OPTIONS = {
  dir: { type: "string" },
  name: { type: "string" },
  framing: { type: "string" },
  "max-message": { type: "string" },
  "exit-word": { type: "string" },
  verbose: { type: "boolean" },
  help: { type: "boolean", short: "h" },
} as const;

/** The values of {@linkcode COMMON_OPTIONS}, checked; `undefined` where not given. */
export function parseCommonOptions(values: {
  name?: string;
  framing?: string;
  "max-message"?: string;
  "exit-word"?: string;
}): { name?: string; framing?: Framing; maxMessage?: number; exitWord?: string } {
  return {
    name: parseName(values.name),
    framing: parseFraming(values.framing),
    maxMessage: parseCount("--max-message", values["max-message"], 1),
    exitWord: parseExitWord(values["exit-word"]),
  };
}

/** Reads a whole number in `[min, max]` from an option's text. */
export function parseCount(flag: string, text: string | undefined, min: number, max = 2 ** 31 - 1) {
  if (text === undefined) return undefined;
  const value = /^\d+$/.test(text) ? Number(text) : NaN;
  if (!Number.isSafeInteger(value) || value < min || value > max) {
    throw new UsageError(
      `Invalid ${flag} "${text}": expected a whole number from ${min} to ${max}`,
    );
  }
  return value;
}

/** Reads a framing name. */
export function parseFraming(text: string | undefined): Framing | undefined {
  if (text === undefined) return undefined;
  if (!FRAMINGS.includes(text as Framing)) {
    throw new UsageError(`Invalid --framing "${text}": expected one of ${FRAMINGS.join(", ")}`);
  }
  return text as Framing;
}

/** Reads an `--exit-word`: one line of text, since a message cannot hold a newline. */
export function parseExitWord(text: string | undefined): string | undefined {
  if (text?.includes("\n")) {
    // Escaped, so that the error stays one line.
    const shown = printable(new TextEncoder().encode(text));
    throw new UsageError(`Invalid --exit-word "${shown}": it cannot contain a newline`);
  }
  return text;
}

/** Reads a `--name`: a plain file name, no path (the library's own rule). */
export function parseName(text: string | undefined): string | undefined {
  if (text === undefined) return undefined;
  try {
    return serverPlace({ name: text }).name;
  } catch (cause) {
    throw new UsageError(`Invalid --name "${text}": use letters, digits, ".", "_" and "-"`, {
      cause,
    });
  }
}

/**
 * Whether `error` is a defect of the program rather than of its input or its world: the
 * CLIs check every argument themselves (a {@linkcode UsageError}), so a `TypeError` that
 * reaches them is a bug, as are the other errors JavaScript throws for broken code.
 */
function isBug(error: unknown): boolean {
  return error instanceof TypeError || error instanceof ReferenceError ||
    error instanceof SyntaxError || !(error instanceof Error);
}

/**
 * Prints an error the way both CLIs do and returns the exit status: 2 for a
 * {@linkcode UsageError}, 1 for the rest, with a one-line hint for a permission Deno
 * refused. The stack is printed with `verbose`, and a bug says how to get it.
 */
export function reportFailure(
  program: string,
  error: unknown,
  dir: string,
  verbose = false,
): number {
  const message = error instanceof Error ? error.message : String(error);
  console.error(`error: ${message}`);
  if (error instanceof UsageError) {
    console.error(`Run "${program} --help" for usage.`);
    return 2;
  }
  if (verbose && error instanceof Error && error.stack) {
    console.error(error.stack);
  } else if (isBug(error)) {
    console.error(
      `This is a bug in ${program} (${(error as Error)?.name ?? typeof error}): ` +
        "run it again with --verbose for the stack trace, and report it",
    );
  }
  if (error instanceof Deno.errors.NotCapable || error instanceof Deno.errors.PermissionDenied) {
    if (message.includes("--allow-run=mkfifo")) {
      // The library's own message already says what to add.
    } else if (/run access/.test(message)) {
      console.error("hint: add --allow-run=mkfifo");
    } else if (/read access|write access/.test(message)) {
      console.error(`hint: add --allow-read=${dir} --allow-write=${dir}`);
    }
  }
  return 1;
}
