/**
 * Beyond one host: the README's socat recipe, run on 127.0.0.1. Each TCP connection gets
 * its own `client.ts --stdin`, so its own session; eight at once each get exactly their
 * own echoes. Skipped with a reason where socat is not installed.
 *
 * The TCP clients are socat too: the test needs no --allow-net.
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  fifosUnder,
  flagsFor,
  projectPath,
  requires,
  spawn,
  startServer,
  tempDir,
} from "./helpers.ts";

const test = requires("--allow-run", "socat");

/** The recipe's listener: one client.ts per connection, with socat's -t raised. */
function bridge(dir: string, port: number) {
  const client = [Deno.execPath(), "run", ...flagsFor("client.ts", dir), projectPath("client.ts")]
    .concat(["--dir", dir, "--stdin"]).join(" ");
  return spawn("socat", [
    "-t",
    "30",
    `TCP-LISTEN:${port},bind=127.0.0.1,reuseaddr,fork`,
    `EXEC:${client}`,
  ], { deadline: 60_000 });
}

test("socat recipe: 8 concurrent TCP clients on 127.0.0.1 each get exactly their own echoes", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await startServer(dir);
  // A port nobody else in this run uses; a clash shows as socat failing to bind.
  const port = 20_000 + (crypto.getRandomValues(new Uint16Array(1))[0] % 40_000);
  await using listener = bridge(dir, port);
  const clients = Array.from({ length: 8 }, (_, c) => {
    const lines = Array.from(
      { length: 100 },
      (_, i) => `client ${c} line ${i} ${"x".repeat(c * 37)}`,
    );
    // retry: the listener may not be up yet; -t: wait for the echoes after our end of file.
    const proc = spawn("socat", [
      "-t",
      "30",
      "STDIO",
      `TCP:127.0.0.1:${port},retry=100,interval=0.1`,
    ], { stdin: "piped", deadline: 45_000 });
    return { lines, proc };
  });
  try {
    await Promise.all(clients.map(async ({ lines, proc }) => {
      await proc.write(lines.join("\n") + "\n");
      await proc.closeStdin();
    }));
    const results = await Promise.all(clients.map(({ proc }) => proc.done));
    for (const [c, result] of results.entries()) {
      assert.equal(result.code, 0, `client ${c}: ${result.stderr}\nlistener: ${listener.stderr()}`);
      assert.equal(result.stdout, clients[c].lines.join("\n") + "\n", `client ${c}'s echoes`);
    }
  } finally {
    for (const { proc } of clients) await proc[Symbol.asyncDispose]();
  }
  await listener[Symbol.asyncDispose]();
  server.child.kill("SIGTERM");
  const stopped = await server.done;
  assert.equal(stopped.code, 0);
  assert.match(stopped.stdout, /8 clients \(8 in sessions\)/);
  assert.deepEqual(fifosUnder(dir), []);
});
