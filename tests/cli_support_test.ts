/**
 * What the CLIs share, in-process: each option parser accepts what it should and turns
 * anything else into a UsageError that quotes the offending value; and how a failure is
 * reported: a usage error exits 2, anything else 1, and a genuine bug (a TypeError the CLI
 * did not raise itself) says so and shows its stack under --verbose (console.error
 * captured). Needs no permission.
 *
 * @module
 */
import { deepEqual, equal, fail, match, ok as assert } from "node:assert/strict";
import {
  parseCommandLine,
  parseCount,
  parseExitWord,
  parseFraming,
  parseName,
  reportFailure,
  UsageError,
} from "../lib/cli/cli_support.ts";

/** The UsageError `parse` throws; fails the test if it throws none or another error. */
function usageErrorOf(parse: () => unknown, what: string): UsageError {
  try {
    const value = parse();
    fail(`${what}: expected a UsageError, got ${JSON.stringify(value)}`);
  } catch (error) {
    if (error instanceof UsageError) return error;
    throw error;
  }
}

/** One option parser: what it accepts (and returns), what it refuses, and how it says so. */
interface ParserTable {
  name: string;
  parse: (text: string | undefined) => unknown;
  valid: [text: string | undefined, value: unknown][];
  invalid: string[];
  message: (text: string) => string;
  /** The error the parser's message is built from, kept as the UsageError's cause. */
  cause?: ErrorConstructor;
}

const MAX_INT32 = 2 ** 31 - 1;
const countMessage = (flag: string, min: number, max = MAX_INT32) => (text: string) =>
  `Invalid ${flag} "${text}": expected a whole number from ${min} to ${max}`;
/** Not whole numbers in decimal digits, whatever the bounds. */
const NOT_COUNTS = ["", "-1", "+1", "1.5", "1.0", "1e3", " 1", "1 ", "0x10", "ten", "\u0661"];

const PARSERS: ParserTable[] = [
  {
    name: 'parseCount("--count", text, 0)',
    parse: (text) => parseCount("--count", text, 0),
    valid: [[undefined, undefined], ["0", 0], ["10", 10], ["007", 7], [`${MAX_INT32}`, MAX_INT32]],
    invalid: [...NOT_COUNTS, `${MAX_INT32 + 1}`, "99999999999999999999"],
    message: countMessage("--count", 0),
  },
  {
    name: 'parseCount("--max-message", text, 1)',
    parse: (text) => parseCount("--max-message", text, 1),
    valid: [[undefined, undefined], ["1", 1], ["1048576", 1048576]],
    invalid: ["0", "00", ...NOT_COUNTS],
    message: countMessage("--max-message", 1),
  },
  {
    name: 'parseCount("--interval", text, 5, 10)',
    parse: (text) => parseCount("--interval", text, 5, 10),
    valid: [[undefined, undefined], ["5", 5], ["10", 10]],
    invalid: ["4", "11", ...NOT_COUNTS],
    message: countMessage("--interval", 5, 10),
  },
  {
    name: "parseFraming",
    parse: parseFraming,
    valid: [[undefined, undefined], ["lines", "lines"], ["length", "length"], ["raw", "raw"]],
    invalid: ["", "LINES", "line", "json", " raw", "raw "],
    message: (text) => `Invalid --framing "${text}": expected one of lines, length, raw`,
  },
  {
    name: "parseExitWord",
    parse: parseExitWord,
    valid: [
      [undefined, undefined],
      ["exit", "exit"],
      ["", ""], // no exit word
      ["bye now", "bye now"],
      ["stop\r", "stop\r"],
      ["ünï ✓", "ünï ✓"],
    ],
    invalid: ["\n", "a\nb", "exit\n"],
    // One line: the newline is shown escaped.
    message: (text) =>
      `Invalid --exit-word "${text.replaceAll("\n", "\\n")}": it cannot contain a newline`,
  },
  {
    name: "parseName",
    parse: parseName,
    valid: [
      [undefined, undefined],
      ["pipe", "pipe"],
      ["a", "a"],
      ["My.pipe-2_b", "My.pipe-2_b"],
      ["...", "..."], // not "." or "..": a plain file name
    ],
    invalid: ["", ".", "..", "a/b", "/tmp/pipe", "../pipe", "two words", "pipé", "a\nb", "a\u0000"],
    message: (text) => `Invalid --name "${text}": use letters, digits, ".", "_" and "-"`,
    cause: TypeError,
  },
];

for (const { name, parse, valid, invalid, message, cause } of PARSERS) {
  Deno.test(`${name}: returns each valid value, and undefined for an absent option`, () => {
    for (const [text, value] of valid) equal(parse(text), value, JSON.stringify(text));
  });

  Deno.test(`${name}: anything else is a UsageError quoting the offending value`, () => {
    for (const text of invalid) {
      const error = usageErrorOf(() => parse(text), JSON.stringify(text));
      equal(error.name, "UsageError");
      equal(error.message, message(text));
      if (cause) assert(error.cause instanceof cause, `${JSON.stringify(text)}: its cause`);
    }
  });
}

const OPTIONS = {
  count: { type: "string" },
  quiet: { type: "boolean" },
  send: { type: "string", short: "s" },
} as const;

Deno.test("parseCommandLine: long, --flag=value and short forms; the last of a repeat wins", () => {
  const cases: [string[], Record<string, unknown>][] = [
    [[], {}],
    [["--count", "5", "--quiet"], { count: "5", quiet: true }],
    [["--count=5"], { count: "5" }],
    [["--count="], { count: "" }],
    [["--count=-1"], { count: "-1" }],
    [["-s", "hi"], { send: "hi" }],
    [["--count", "1", "--count", "2"], { count: "2" }],
  ];
  for (const [args, values] of cases) {
    deepEqual(parseCommandLine(args, OPTIONS), { values, positionals: [] }, args.join(" "));
  }
});

Deno.test("parseCommandLine: an unknown flag, a missing value or a positional is a UsageError", () => {
  const cases: [string[], string | RegExp][] = [
    [["--bogus"], "Unknown option '--bogus'"],
    [["-x"], "Unknown option '-x'"],
    [["--count"], "Option '--count <value>' argument missing"],
    [["--quiet=yes"], "Option '--quiet' does not take an argument"],
    [["--count", "--quiet"], /^Option '--count' argument is ambiguous/],
    [["extra"], "Unexpected argument 'extra'. This command does not take positional arguments"],
    [["--", "x"], /^Unexpected argument 'x'/],
  ];
  for (const [args, expected] of cases) {
    const error = usageErrorOf(() => parseCommandLine(args, OPTIONS), args.join(" "));
    if (typeof expected === "string") equal(error.message, expected, args.join(" "));
    else match(error.message, expected, args.join(" "));
    assert(!error.message.endsWith("."), `${args.join(" ")}: no full stop, as our own messages`);
    assert(error.cause instanceof Error, `${args.join(" ")}: node's error kept as the cause`);
  }
});

/** Runs `reportFailure` and returns its status and what it printed. */
function report(error: unknown, verbose = false): { status: number; printed: string } {
  const lines: string[] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args.join(" "));
  try {
    return {
      status: reportFailure("client.ts", error, "/tmp", verbose),
      printed: lines.join("\n"),
    };
  } finally {
    console.error = original;
  }
}

Deno.test("reportFailure: a usage error exits 2 and points at --help", () => {
  const { status, printed } = report(new UsageError('Invalid --count "x"'));
  equal(status, 2);
  equal(printed, 'error: Invalid --count "x"\nRun "client.ts --help" for usage.');
});

Deno.test("reportFailure: a genuine bug (TypeError) exits 1, not 2, and says how to see its stack", () => {
  const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
  const quiet = report(bug);
  equal(quiet.status, 1);
  match(quiet.printed, /This is a bug in client\.ts \(TypeError\): run it again with --verbose/);
  assert(!quiet.printed.includes("    at "), "no stack without --verbose");
  const verbose = report(bug, true);
  equal(verbose.status, 1);
  assert(verbose.printed.includes(bug.stack!), "the stack under --verbose");
});

Deno.test("reportFailure: a runtime error exits 1 without calling itself a bug", () => {
  const { status, printed } = report(new Deno.errors.TimedOut("Timed out after 5000 ms"));
  equal(status, 1);
  equal(printed, "error: Timed out after 5000 ms");
});
