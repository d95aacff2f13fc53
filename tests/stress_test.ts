/**
 * The full-size session scenarios of sessions_test.ts: minutes, not seconds, so they are
 * not part of the default test run. Run them with
 *
 *     deno test --allow-read --allow-write=/tmp --allow-run --allow-env tests/stress_test.ts
 *
 * @module
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { echoScenario, idleScenario } from "./session_scenarios.ts";
import { requires } from "./helpers.ts";

const test = requires("--allow-run");

const MINUTE = 60_000;

test("stress: 32 client processes x 1,000 random lines (0 B to 256 KiB, uniform) each get exactly their own echoes", async () => {
  const summaries = await echoScenario({
    framing: "lines",
    clients: 32,
    count: 1000,
    dist: "uniform",
    deadline: 20 * MINUTE,
  });
  assertEquals(summaries.length, 32);
  console.log(JSON.stringify(summaries.map((s) => s.ms)));
});

test("stress: 32 client processes x 1,000 random binary length-framed messages (log-uniform sizes)", async () => {
  const summaries = await echoScenario({
    framing: "length",
    clients: 32,
    count: 1000,
    dist: "log",
    deadline: 20 * MINUTE,
  });
  assertEquals(summaries.length, 32);
});

test("stress: 1,000 idle sessions in one process plus one active one, 100 round trips", async () => {
  const summary = await idleScenario({
    idle: 1000,
    rounds: 100,
    checkIdle: true,
    deadline: 10 * MINUTE,
  });
  assertEquals(summary.idle, 1000);
  console.log(JSON.stringify(summary));
});

test("stress: SIGKILL 8 of 32 clients mid-stream: the other 24 finish byte-exact", async () => {
  const summaries = await echoScenario({
    framing: "lines",
    clients: 32,
    kill: 8,
    count: 300,
    dist: "uniform",
    deadline: 20 * MINUTE,
  });
  assertEquals(summaries.length, 24);
});

test({
  name:
    "stress: SIGKILL 8 of 32 clients mid-stream: nothing of theirs is left once the server noticed",
  // Guards cleanup of sessions that end on EPIPE (see sessions_test.ts), at full size.
  async fn() {
    await echoScenario({
      framing: "lines",
      clients: 32,
      kill: 8,
      count: 300,
      dist: "uniform",
      deadline: 20 * MINUTE,
      checkLeftovers: true,
    });
  },
});
