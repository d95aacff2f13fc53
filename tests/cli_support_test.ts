/**
 * How the CLIs report a failure: a usage error exits 2, anything else 1, and a genuine
 * bug (a TypeError the CLI did not raise itself) says so and shows its stack under
 * --verbose. In-process: reportFailure() with console.error captured.
 *
 * @module
 */
import { equal, match, ok as assert } from "node:assert/strict";
import { reportFailure, UsageError } from "../lib/cli_support.ts";

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
