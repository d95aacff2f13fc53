/**
 * A server's FIFOs removed, renamed or replaced under it, by a temp cleaner, a user's
 * `rm /tmp/pipe.*` or `kill $PID; rm -rf $DIR`: a vanished name is put back (the same
 * FIFO), a name taken by something else stops the server with status 1 and one line, and
 * SIGTERM stops it in every such state.
 *
 * @module
 */
import assert from "node:assert/strict";
import { entries, plainRoundTrip, requires, runCli, serve, tempDir, waitUntil } from "./helpers.ts";

const test = requires("--allow-run");
const CARD = ["--allow-read=/tmp", "--allow-write=/tmp", "--allow-run=mkfifo"];

/** A session client that keeps talking until it is killed. */
function load(dir: string) {
  return runCli("client.ts", dir, ["--count", "1000000", "--interval", "1", "--no-exit"], {
    flags: CARD,
    deadline: 60_000,
  });
}

/** Stops the server with SIGTERM, logging how long it took (timings are not asserted). */
async function terminate(server: Awaited<ReturnType<typeof serve>>, label: string) {
  const started = performance.now();
  server.child.kill("SIGTERM");
  const result = await server.done;
  console.log(`${label}: stopped ${Math.round(performance.now() - started)} ms after SIGTERM`);
  return result;
}

for (const [suffix, action] of [["in", "rm"], ["out", "mv"], ["ctl", "rm"], ["in", "mv"]]) {
  test(`vanish: ${action} NAME.${suffix} under load: put back, the same FIFO, then SIGTERM`, async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    await using server = await serve(dir, [], { flags: CARD });
    await using client = load(dir);
    await waitUntil(() => client.stdout().includes("received msg: msg 2\n"), 10_000, "load");
    const path = `${dir}/pipe.${suffix}`;
    const before = Deno.lstatSync(path);
    if (action === "rm") Deno.removeSync(path);
    else Deno.renameSync(path, `${dir}/moved`);
    // A new client through the door that does not need the vanished name makes the server
    // look at its names at once (else its next look, within 5 s, would).
    const doors = {
      plain: async () => assert.equal(await plainRoundTrip(dir, "plain after"), "plain after\n"),
      session: async () => {
        const session = await runCli("client.ts", dir, ["--send", "session after"], {
          flags: CARD,
        }).done;
        assert.equal(session.stdout, "session after\n");
      },
    };
    const [first, second] = suffix === "ctl"
      ? [doors.plain, doors.session]
      : [doors.session, doors.plain];
    await first();
    await waitUntil(
      () => server.stderr().includes(`Put back "${path}": it had been removed or renamed\n`),
      15_000,
      "the server to put the name back",
    );
    const after = Deno.lstatSync(path);
    assert.deepEqual([after.dev, after.ino], [before.dev, before.ino]);
    // Both doors still work, and the load never noticed.
    await second();
    const count = client.stdout().length;
    await waitUntil(() => client.stdout().length > count, 10_000, "more load echoes");
    client.child.kill("SIGKILL");
    await client.done.catch(() => {});
    const result = await terminate(server, `${action} NAME.${suffix}`);
    assert.equal(result.code, 0, result.stderr);
    if (action === "mv") Deno.removeSync(`${dir}/moved`); // our FIFO under a name not ours
    assert.deepEqual(entries(dir).filter((e) => !e.startsWith("pipe.session-")), []);
  });
}

test("vanish: NAME.in replaced by another FIFO stops the server with status 1", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await serve(dir, ["--quiet"], { flags: CARD });
  const made = await new Deno.Command("mkfifo", { args: ["-m", "600", `${dir}/other`] }).output();
  assert.equal(made.code, 0);
  Deno.renameSync(`${dir}/other`, `${dir}/pipe.in`);
  const result = await server.done; // noticed by the next check (at most 5 s)
  assert.equal(result.code, 1);
  assert.equal(
    result.stderr,
    `error: Cannot serve on "${dir}/pipe.in": it now names something else\n`,
  );
  // Its own names are gone; the FIFO that took its place is left to its owner.
  assert.deepEqual(entries(dir), ["pipe.in"]);
});

test("vanish: kill, then rm -rf of the directory: SIGTERM still stops the server", async () => {
  using tmp = tempDir();
  const dir = `${tmp.path}/d`;
  Deno.mkdirSync(dir, { mode: 0o700 });
  await using server = await serve(dir, ["--quiet"], { flags: CARD });
  assert.equal(await plainRoundTrip(dir, "before"), "before\n");
  // The race of `kill $PID; rm -rf $DIR`: the directory goes, private links and all,
  // while the worker waits in open() of a FIFO that no path names any more.
  Deno.removeSync(dir, { recursive: true });
  const result = await terminate(server, "rm -rf");
  assert.equal(result.code, 0, result.stderr);
});
