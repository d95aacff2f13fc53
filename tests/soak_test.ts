/**
 * The short soak that runs in CI: `bench/soak.ts` for 25 s (64 session clients over three
 * servers, drivers SIGKILLed and replaced), which exits non-zero on any lost or corrupt
 * echo among drivers that were not killed, a failed driver, or an unclean server stop.
 * `deno task soak` runs the long one.
 *
 * @module
 */
import assert from "node:assert/strict";
import { projectPath, requires, spawn } from "./helpers.ts";

const test = requires("--allow-run");

test("soak (25 s): 64 session clients, SIGKILLs and reconnects, nothing lost", async () => {
  await using soak = spawn(Deno.execPath(), [
    "run",
    "--allow-read",
    "--allow-write=/tmp",
    "--allow-run",
    "--allow-env",
    projectPath("bench/soak.ts"),
    "--seconds",
    "25",
  ], { deadline: 120_000 });
  const result = await soak.done;
  assert.equal(result.code, 0, `${result.stdout}\n${result.stderr}`);
  assert.match(result.stdout, /\*\*0 lost, 0 corrupt\*\*/, result.stdout);
  assert.match(result.stdout, /echoes checked byte for byte/);
  console.log(result.stdout.trim());
});
