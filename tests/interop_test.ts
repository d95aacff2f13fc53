/**
 * Interop over real FIFOs with programs that are not ours: Python's
 * multiprocessing.connection framing, and the seed article's client and server (ported to
 * Python 3 in tests/fixtures).
 *
 * @module
 */
import assert from "node:assert/strict";
import {
  entries,
  isFifo,
  projectPath,
  requires,
  runCli,
  serve,
  tempDir,
  waitUntil,
  withoutStartLine,
} from "./helpers.ts";
import { type Proc, spawn } from "../tools/spawn.ts";

/** Every test here talks to Python programs. */
const test = requires("--allow-run", "python3");

function summary(stdout: string): string {
  return withoutStartLine(stdout).replace(/, \d+\.\d\d s\n$/, ", T s\n");
}

function seedClientOutput(): string {
  let out = "";
  for (let i = 1; i <= 10; i++) out += `sent msg: msg ${i}\nreceived msg: msg ${i}\n`;
  return out;
}

test("interop: Python multiprocessing Connection.send_bytes/recv_bytes, --framing length", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  for (const quiet of [true, false]) {
    await using server = await serve(dir, ["--framing", "length", ...(quiet ? ["--quiet"] : [])]);
    await using client = spawn(
      "python3",
      [projectPath("tests/fixtures/mp_client.py"), `${dir}/pipe.in`, `${dir}/pipe.out`],
      { deadline: 15_000 },
    );
    const result = await client.done;
    assert.equal(result.stderr, "");
    assert.equal(result.stdout, "OK 58 messages, 103193 bytes\n");
    assert.equal(result.code, 0);
    const stopped = await server.done;
    assert.equal(stopped.code, 0);
    assert.equal(stopped.stderr, "");
    const lines = withoutStartLine(stopped.stdout).split("\n");
    assert.equal(
      summary(lines.slice(-2).join("\n")),
      "server stopped: 58 messages, 103193 bytes, 1 client (0 in sessions), T s\n",
    );
    if (quiet) {
      assert.equal(lines.length, 2);
    } else {
      // One log line per message, the exit word's included.
      assert.equal(lines.length, 58 + 1 + 2);
      assert.deepEqual(lines.slice(0, 4), [
        "received msg: hello",
        "received msg: ",
        "received msg: héllo wörld ✓",
        "received msg: \\x00\\x01\\x02\\x03\\x04\\x05\\x06\\x07\\x08\\t\\n\\x0b\\x0c\\r\\x0e" +
        "\\x0f\\x10\\x11\\x12\\x13\\x14\\x15\\x16\\x17\\x18\\x19\\x1a\\x1b\\x1c\\x1d\\x1e\\x1f" +
        " !\"#$%&'()*+,-./0123456789:;<=>?@ABCDEFGHIJKLMNOPQRSTUVWXYZ[\\\\]^_`abcdefghijklmno" +
        "pqrstuvwxyz{|}~\\x7f" +
        Array.from({ length: 128 }, (_, i) => `\\x${(i + 128).toString(16)}`).join(""),
      ]);
      assert.equal(lines[57], "received msg: message 49");
      assert.equal(lines[58], "received msg: exit");
    }
    assert.deepEqual(entries(dir), []);
  }
});

test("interop: the seed's client against our server (--framing raw)", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using server = await serve(dir, ["--framing", "raw"]);
  await using seed = spawn(
    "python3",
    [projectPath("tests/fixtures/seed_client.py"), `${dir}/pipe.in`, `${dir}/pipe.out`],
    { deadline: 15_000, env: { SEED_INTERVAL: "0.05" } },
  );
  const result = await seed.done;
  assert.equal(result.stderr, "");
  assert.equal(result.stdout, seedClientOutput());
  assert.equal(result.code, 0);
  // The seed's final "exit" stops our server, which removes its FIFOs.
  const stopped = await server.done;
  assert.equal(stopped.code, 0);
  assert.equal(stopped.stderr, "");
  const log = Array.from({ length: 10 }, (_, i) => `received msg: msg ${i + 1}\n`).join("");
  assert.equal(
    summary(stopped.stdout),
    `${log}received msg: exit\nserver stopped: 10 messages, 51 bytes, 1 client (0 in sessions), T s\n`,
  );
  assert.deepEqual(entries(dir), []);
});

/** Kills `proc` if it still runs and waits for it. */
async function kill(proc: Proc): Promise<void> {
  try {
    proc.child.kill("SIGKILL");
  } catch { /* already exited */ }
  await proc.done.catch(() => {});
}

/** Starts the seed's server port on DIR/pipe.{in,out} and waits for its FIFOs. */
async function seedServer(dir: string, umask: string): Promise<Proc> {
  const server = spawn(
    "sh",
    [
      "-c",
      'umask "$1"; exec python3 "$2" "$3/pipe.in" "$3/pipe.out"',
      "sh",
      umask,
      projectPath("tests/fixtures/seed_server.py"),
      dir,
    ],
    { deadline: 15_000, env: { SEED_EOF_SLEEP: "0.05" } },
  );
  try {
    await Promise.race([
      waitUntil(
        () => isFifo(`${dir}/pipe.out`) && isFifo(`${dir}/pipe.in`),
        10_000,
        "the seed server's FIFOs",
      ),
      server.done.then((r) => {
        throw new Error(`The seed server exited early (${r.code}): ${r.stderr}`);
      }),
    ]);
  } catch (error) {
    await server[Symbol.asyncDispose]();
    throw error;
  }
  return server;
}

for (const [framing, mode] of [["raw", "auto"], ["lines", "shared"], ["lines", "auto"]]) {
  test(`interop: our client (${mode}) against the seed's server, --framing ${framing}`, async () => {
    using tmp = tempDir();
    const dir = tmp.path;
    // The seed's mkfifo honours the umask; our client trusts only FIFOs of mode 0600.
    await using seed = await seedServer(dir, "077");
    try {
      const args = ["--framing", framing, "--count", "10", "--interval", "0"];
      if (mode === "shared") args.push("--shared");
      await using client = runCli("client.ts", dir, args, { deadline: 15_000 });
      const result = await client.done;
      assert.equal(result.stderr, "");
      assert.equal(result.stdout, seedClientOutput());
      assert.equal(result.code, 0);
      // Our exit word stops the seed's server ("exit" in s).
      const stopped = await seed.done;
      assert.equal(stopped.stderr, "");
      assert.equal(stopped.code, 0);
      const nl = framing === "lines" ? "\n" : "";
      const log = [...Array.from({ length: 10 }, (_, i) => `msg ${i + 1}`), "exit"]
        .map((m) => `received msg: ${m}${nl}\n`).join("");
      assert.equal(stopped.stdout, log);
    } finally {
      await kill(seed); // it should have stopped; never leave it running
    }
    // Like the article's, the seed server leaves its FIFOs behind (the temp dir goes anyway).
    assert.deepEqual(entries(dir), ["pipe.in", "pipe.out"]);
  });
}

test("interop: client --strict refuses the seed's FIFOs made under umask 022 (mode 0644)", async () => {
  using tmp = tempDir();
  const dir = tmp.path;
  await using seed = await seedServer(dir, "022");
  try {
    await using client = runCli(
      "client.ts",
      dir,
      ["--strict", "--send", "hi", "--timeout", "500"],
      {
        deadline: 15_000,
      },
    );
    const result = await client.done;
    assert.equal(
      result.stderr,
      `error: Cannot use FIFO "${dir}/pipe.in": its mode 0644 lets other users in ` +
        "(expected 0600)\n",
    );
    assert.equal(result.stdout, "");
    assert.equal(result.code, 1);
  } finally {
    await kill(seed);
  }
});
