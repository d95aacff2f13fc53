/**
 * The full-size runs, minutes rather than seconds, out of the default test run: the
 * session scenarios of sessions_test.ts and the fuzz of fuzz_test.ts at full size, and the
 * soak. Run them with `deno task stress`:
 *
 *     deno test --allow-read --allow-write=/tmp --allow-run --allow-env tests/stress_test.ts
 *
 * `FUZZ_SEED` works as in fuzz_test.ts.
 *
 * @module
 */
import { deepStrictEqual as assertEquals, match as assertMatch } from "node:assert/strict";
import { FRAMINGS } from "../lib/framing/framing.ts";
import { fuzzSeed, fuzzServer, type FuzzSize } from "./fuzz_scenario.ts";
import { projectPath, requires, spawn } from "./helpers.ts";
import { type EchoScenario, echoScenario, idleScenario } from "./session_scenarios.ts";

const test = requires("--allow-run");

const MINUTE = 60_000;

/** Each echo scenario, and how many clients must report (the ones not killed). */
const ECHO_SCENARIOS: [name: string, scenario: EchoScenario, survivors: number][] = [
  [
    "32 client processes x 1,000 random lines (0 B to 256 KiB, uniform) each get exactly their own echoes",
    { framing: "lines", clients: 32, count: 1000, dist: "uniform" },
    32,
  ],
  [
    "32 client processes x 1,000 random binary length-framed messages (log-uniform sizes)",
    { framing: "length", clients: 32, count: 1000, dist: "log" },
    32,
  ],
  [
    "SIGKILL 8 of 32 clients mid-stream: the other 24 finish byte-exact, nothing of theirs is left once the server noticed",
    // Guards cleanup of sessions that end on EPIPE (see sessions_test.ts), at full size.
    { framing: "lines", clients: 32, kill: 8, count: 300, dist: "uniform", checkLeftovers: true },
    24,
  ],
];

for (const [name, scenario, survivors] of ECHO_SCENARIOS) {
  test(`stress: ${name}`, async () => {
    const summaries = await echoScenario({ ...scenario, deadline: 20 * MINUTE });
    assertEquals(summaries.length, survivors);
    console.log(JSON.stringify(summaries.map((s) => s.ms)));
  });
}

test("stress: 1,000 idle sessions in one process plus one active one, 100 round trips", async () => {
  const summary = await idleScenario({
    idle: 1000,
    rounds: 100,
    checkIdle: true,
    listening: true,
    deadline: 10 * MINUTE,
  });
  assertEquals(summary.idle, 1000);
  console.log(JSON.stringify(summary));
});

const SEED = fuzzSeed();
console.log(`fuzz seed: ${SEED} (FUZZ_SEED=${SEED} reproduces, FUZZ_SEED=random explores)`);

/** fuzz_test.ts's fuzz at full size: thousands of cases per door, several batches each. */
const FULL: FuzzSize = {
  batches: [["plain", 4, 1500], ["session", 2, 1000], ["ctl", 2, 300]],
  connectCases: 40,
  deadline: 5 * MINUTE,
};

for (const framing of FRAMINGS) {
  test(`stress: fuzz, ${framing} framing, hostile input through every door`, async () => {
    await fuzzServer(framing, SEED, FULL);
  });
}

test("stress: soak (25 s): 64 session clients, SIGKILLs and reconnects, nothing lost", async () => {
  // bench/soak.ts exits non-zero on any lost or corrupt echo among drivers that were not
  // killed, a failed driver, or an unclean server stop.
  await using soak = spawn(Deno.execPath(), [
    "run",
    "--allow-read",
    "--allow-write=/tmp",
    "--allow-run",
    "--allow-env",
    projectPath("bench/soak.ts"),
    "--seconds",
    "25",
  ], { deadline: 2 * MINUTE });
  const result = await soak.done;
  assertEquals(result.code, 0, `${result.stdout}\n${result.stderr}`);
  assertMatch(result.stdout, /\*\*0 lost, 0 corrupt\*\*/, result.stdout);
  assertMatch(result.stdout, /echoes checked byte for byte/);
  console.log(result.stdout.trim());
});
