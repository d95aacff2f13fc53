/**
 * A second user attacks root's server and clients (issue 12): the tests run as root and
 * the attacker runs as `nobody` through `runuser`, with real processes, real FIFOs and a
 * real inotify racer (tests/fixtures/racer.py). Skipped, with the reason printed, when the
 * tests are not root or `runuser` or `python3` is missing.
 *
 * The clients run with the card's permissions (`--allow-read=/tmp --allow-write=/tmp
 * --allow-run=mkfifo`), the path users run: a symlink's target anywhere in /tmp is then
 * within their reach, as it is for a real user.
 *
 * @module
 */
import assert from "node:assert/strict";
import { closeSync, constants, openSync } from "node:fs";
import { connect } from "../lib/session/connect.ts";
import { listen } from "../lib/session/listen.ts";
import { makeFifo } from "../lib/fifo/make_fifo.ts";
import {
  entries,
  isRunning,
  plainPairIdle,
  type Proc,
  projectPath,
  runCli,
  serve,
  spawn,
  waitUntil,
} from "./helpers.ts";

const NOBODY = 65534;
const CARD_FLAGS = ["--allow-read=/tmp", "--allow-write=/tmp", "--allow-run=mkfifo"];
/** The card's flags for server.ts, which also reads lib/ for its worker. */
const SERVER_FLAGS = [
  `--allow-read=/tmp,${projectPath("lib")}`,
  "--allow-write=/tmp",
  "--allow-run=mkfifo",
];

function skipReason(): string | undefined {
  const has = (command: string) => {
    try {
      return new Deno.Command("sh", { args: ["-c", `command -v ${command}`], stdout: "null" })
        .outputSync().code === 0;
    } catch {
      return false;
    }
  };
  const probe = Deno.makeTempDirSync({ dir: "/tmp", prefix: "fifo-attack-probe-" });
  const uid = Deno.statSync(probe).uid;
  Deno.removeSync(probe);
  if (uid !== 0) return "not root: another user's files cannot be made";
  if (!has("runuser")) return "runuser is missing: nothing can run as a second user";
  if (!has("python3")) return "python3 is missing: the racer is a Python script";
}

const skip = skipReason();
if (skip) console.log(`attacker_test.ts skipped: ${skip}`);

/** Registers a test that needs root, `runuser` and `python3`. */
function attackTest(name: string, fn: () => Promise<void>): void {
  Deno.test({ name: `attacker: ${name}`, ignore: skip !== undefined, fn });
}

/**
 * A private playground under /tmp: root's, mode 0755 (so `nobody` can reach into it, and it
 * passes the directory check as an ancestor); removed with everything in it by `using`.
 */
function playground(): Disposable & { path: string } {
  const path = Deno.makeTempDirSync({ dir: "/tmp", prefix: "fifo-attack-" });
  Deno.chmodSync(path, 0o755);
  return {
    path,
    [Symbol.dispose]: () => Deno.removeSync(path, { recursive: true }),
  };
}

/** Makes a directory with exactly `mode` (no umask), owned by `uid`. */
function makeDir(path: string, mode: number, uid = 0): string {
  Deno.mkdirSync(path);
  Deno.chmodSync(path, mode);
  if (uid !== 0) Deno.chownSync(path, uid, uid);
  return path;
}

/**
 * Runs one process (never a shell with children) as `nobody`. `await using` ends it with
 * SIGTERM, which runuser passes on to it: a SIGKILL would end runuser alone and orphan it.
 */
function asNobody(command: string, args: string[], deadline = 30_000): Proc {
  const proc = spawn("runuser", ["-u", "nobody", "--", command, ...args], { deadline });
  return {
    ...proc,
    async [Symbol.asyncDispose]() {
      try {
        proc.child.kill("SIGTERM");
      } catch { /* already exited */ }
      const ended = await Promise.race([
        proc.done.then(() => true, () => true),
        new Promise<false>((resolve) => setTimeout(() => resolve(false), 5000)),
      ]);
      if (!ended) await proc[Symbol.asyncDispose]();
    },
  };
}

/** A `nobody` process parked in a blocking open of FIFO `path`; prints `opened` if it returns. */
function parkedOpen(path: string, access: "read" | "write"): Proc {
  const flag = access === "read" ? "os.O_RDONLY" : "os.O_WRONLY";
  return asNobody("python3", [
    "-c",
    `import os, sys\nos.close(os.open(sys.argv[1], ${flag}))\nprint("opened", flush=True)`,
    path,
  ]);
}

async function nobodyOk(command: string, ...args: string[]): Promise<void> {
  const { code, stderr } = await asNobody(command, args, 10_000).done;
  assert.equal(code, 0, `${command} ${args.join(" ")} as nobody: ${stderr}`);
}

/** Starts the racer as `nobody` on `dir` and waits until it watches. */
async function startRacer(dir: string, seconds: number, targets: Record<string, string>) {
  const racer = asNobody("python3", [
    // Its source, not its path: `nobody` may not be able to reach a clone under /root.
    "-c",
    Deno.readTextFileSync(projectPath("tests/fixtures/racer.py")),
    dir,
    String(seconds),
    ...Object.entries(targets).map(([prefix, target]) => `${prefix}=${target}`),
  ], (seconds + 20) * 1000);
  try {
    await waitUntil(() => racer.stdout().startsWith("ready\n"), 10_000, "the racer");
  } catch (error) {
    await racer[Symbol.asyncDispose]();
    throw error;
  }
  return racer;
}

/** Everything that tells whether a tree was touched: modes, owners, times, entries. */
function snapshot(root: string): string[] {
  const out: string[] = [];
  const walk = (path: string) => {
    const i = Deno.lstatSync(path);
    out.push(
      `${path} ino=${i.ino} mode=${i.mode?.toString(8)} uid=${i.uid} ` +
        `mtime=${i.mtime?.getTime()} ctime=${i.ctime?.getTime()}`,
    );
    if (i.isDirectory) { for (const name of entries(path)) walk(`${path}/${name}`); }
  };
  walk(root);
  return out;
}

/** A client of ours, as users run it, on `dir`. */
function client(dir: string, args: string[]) {
  return runCli("client.ts", dir, ["--timeout", "1000", ...args], {
    flags: CARD_FLAGS,
    deadline: 20_000,
  }).done;
}

attackTest(
  "a --dir others can rearrange is refused by the server and the client, untouched",
  async () => {
    using ground = playground();
    const base = ground.path;
    const loose = makeDir(`${base}/loose`, 0o777);
    const cases: [string, string, string][] = [
      [makeDir(`${base}/open`, 0o777), "it", "is writable by others without the sticky bit"],
      [makeDir(`${base}/group`, 0o770), "it", "is writable by its group without the sticky bit"],
      [
        makeDir(`${base}/theirs`, 0o755, NOBODY),
        "it",
        `is owned by uid ${NOBODY}, not by this user (uid 0) or root`,
      ],
      [
        makeDir(`${base}/their-sticky`, 0o1777, NOBODY),
        "it",
        `is owned by uid ${NOBODY}, not by this user (uid 0) or root`,
      ],
      [
        makeDir(`${loose}/mine`, 0o700),
        `its ancestor "${loose}"`,
        "is writable by others without the sticky bit",
      ],
    ];
    const before = snapshot(base);
    for (const [dir, which, reason] of cases) {
      const expected = `error: Cannot use directory "${dir}": ${which} ${reason}\n`;
      // The card's permissions cover every ancestor up to /tmp, so the loose one is seen.
      const results = await Promise.all([
        runCli("server.ts", dir, [], { flags: SERVER_FLAGS, deadline: 20_000 }).done,
        client(dir, ["--send", "hello"]),
        client(dir, ["--send", "hello", "--shared"]),
      ]);
      for (const result of results) {
        assert.deepEqual([result.code, result.stderr, result.stdout], [1, expected, ""], dir);
      }
      // The library's own doors refuse it too.
      const message = expected.slice("error: ".length, -1);
      await assert.rejects(listen({ dir }), (e: Error) => e.message === message);
      await assert.rejects(connect({ dir, timeout: 500 }), (e: Error) => e.message === message);
    }
    // Nothing was created, chmodded or left behind (no FIFO, no uid probe).
    assert.deepEqual(snapshot(base), before);

    // The same server runs where no other user can rearrange anything: a root-owned sticky
    // directory (as /tmp is), and a private one of ours.
    for (const dir of [makeDir(`${base}/sticky`, 0o1777), makeDir(`${base}/private`, 0o700)]) {
      await using _server = await serve(dir, ["--quiet"], { flags: SERVER_FLAGS });
      const result = await client(dir, ["--send", "hello"]);
      assert.deepEqual([result.code, result.stdout, result.stderr], [0, "hello\n", ""], dir);
    }
  },
);

attackTest(
  "session-directory racer in a dir others can write: refused up front, nothing outside touched",
  async () => {
    using ground = playground();
    const base = ground.path;
    const dir = makeDir(`${base}/open`, 0o777);
    const victim = makeDir(`${base}/victim`, 0o755);
    Deno.writeTextFileSync(`${victim}/keep`, "keep\n");
    // A session server as far as a client can tell: our own request FIFO, with a reader.
    await makeFifo(`${dir}/pipe.ctl`);
    const ctl = openSync(`${dir}/pipe.ctl`, constants.O_RDWR | constants.O_NONBLOCK);
    const before = snapshot(victim);
    await using racer = await startRacer(dir, 30, { "pipe.session-": victim });
    const results = [];
    try {
      for (let attempt = 0; attempt < 5; attempt++) {
        results.push(await client(dir, ["--send", "hello"]));
      }
    } finally {
      closeSync(ctl);
    }
    // Not chmodded, no FIFO made (or made and removed: mtime and ctime would show it).
    assert.deepEqual(snapshot(victim), before, `the racer said:\n${racer.stdout()}`);
    const refusal =
      `error: Cannot use directory "${dir}": it is writable by others without the sticky bit\n`;
    for (const result of results) assert.deepEqual([result.code, result.stderr], [1, refusal]);
    assert.equal(racer.stdout(), "ready\n", "the racer never saw a session directory");
    // The racer was armed: a session directory that does appear is swapped at once.
    Deno.mkdirSync(`${dir}/pipe.session-control`);
    await waitUntil(() => racer.stdout().includes("swapped pipe.session-control\n"), 5000);
    assert.equal(Deno.readLinkSync(`${dir}/pipe.session-control`), victim);
  },
);

attackTest(
  "uid-probe racer in a dir others can write: refused up front, no foreign FIFO trusted",
  async () => {
    using ground = playground();
    const base = ground.path;
    const dir = makeDir(`${base}/open`, 0o777);
    const theirs = makeDir(`${base}/theirs`, 0o755, NOBODY);
    // The attacker's plain pair (0600, theirs) and a server behind it that forges replies.
    await nobodyOk("mkfifo", "-m", "0600", `${dir}/pipe.in`, `${dir}/pipe.out`);
    const forger = asNobody("python3", [
      "-c",
      `import os, sys
while True:
    r = os.open(sys.argv[1] + "/pipe.in", os.O_RDONLY)
    w = os.open(sys.argv[1] + "/pipe.out", os.O_WRONLY)
    data = os.read(r, 65536)
    print("stole", data, flush=True)
    os.write(w, b"FORGED " + data)
    os.close(w)
    os.close(r)`,
      dir,
    ]);
    await using _forger = forger;
    await using racer = await startRacer(dir, 60, { ".uid-probe-": theirs });
    // Against the code before the fix, the first of these was usually robbed.
    const results = [];
    for (let batch = 0; batch < 3; batch++) {
      results.push(...await Promise.all([0, 1, 2, 3].map(() => client(dir, ["--send", "hello"]))));
    }
    const said = `the racer said:\n${racer.stdout()}`;
    assert.equal(forger.stdout(), "", `the attacker's server received nothing; ${said}`);
    assert.deepEqual(results.filter((r) => r.code === 0), [], `no client succeeded; ${said}`);
    const refusal =
      `error: Cannot use directory "${dir}": it is writable by others without the sticky bit\n`;
    for (const r of results) assert.deepEqual([r.code, r.stdout, r.stderr], [1, "", refusal]);
    assert.deepEqual(entries(theirs), []);
    // The racer was armed: a probe that does appear is swapped at once.
    Deno.writeTextFileSync(`${dir}/.uid-probe-control`, "");
    await waitUntil(() => racer.stdout().includes("swapped .uid-probe-control\n"), 5000);
    assert.equal(Deno.readLinkSync(`${dir}/.uid-probe-control`), theirs);
  },
);

attackTest(
  "in a sticky dir (as /tmp) the same racers fail: sessions and probes are not swapped",
  async () => {
    using ground = playground();
    const base = ground.path;
    const dir = makeDir(`${base}/sticky`, 0o1777);
    const victim = makeDir(`${base}/victim`, 0o755);
    const theirs = makeDir(`${base}/theirs`, 0o755, NOBODY);
    const before = snapshot(victim);
    await using server = await serve(dir, ["--quiet"], { flags: SERVER_FLAGS });
    await using racer = await startRacer(dir, 60, {
      "pipe.session-": victim,
      ".uid-probe-": theirs,
    });
    for (let attempt = 0; attempt < 5; attempt++) {
      const result = await client(dir, ["--send", `hello ${attempt}`]);
      assert.deepEqual([result.code, result.stdout, result.stderr], [0, `hello ${attempt}\n`, ""]);
    }
    await waitUntil(
      () => (racer.stdout().match(/^refused /gm) ?? []).length >= 10,
      10_000,
      `the racer's attempts on 5 sessions and 5 probes:\n${racer.stdout()}`,
    );
    // The sticky bit let nobody rename root's entries: every attempt was refused (EPERM).
    assert.equal(racer.stdout().match(/^swapped /gm), null, racer.stdout());
    assert.deepEqual(snapshot(victim), before);
    assert.deepEqual(entries(theirs), []);
    assert.equal(await isRunning(server), true);
  },
);

attackTest("a symlink planted at NAME.in is never opened by the server", async () => {
  using ground = playground();
  const base = ground.path;
  const dir = makeDir(`${base}/sticky`, 0o1777);
  const theirs = makeDir(`${base}/theirs`, 0o755, NOBODY);
  const bait = `${theirs}/bait`;
  const readBait = `${theirs}/read-bait`;
  await nobodyOk("mkfifo", "-m", "0600", bait, readBait);
  // The attacker watches for opens: one process parked in open(O_RDONLY) of a bait returns
  // as soon as anyone opens it for writing (as a wake-up open of NAME.in would), another
  // parked in open(O_WRONLY) as soon as anyone opens it for reading. Parked means unopened.
  await using watcher = parkedOpen(bait, "read");
  await using readWatcher = parkedOpen(readBait, "write");
  await using server = await serve(dir, ["--quiet"], { flags: SERVER_FLAGS });
  // One client on the plain pair: its loop is running, and back in open(NAME.in) after.
  const result = await client(dir, ["--send", "hello", "--shared"]);
  assert.deepEqual([result.code, result.stdout, result.stderr], [0, "hello\n", ""]);
  await plainPairIdle(server.child.pid, "the server to wait for the next client");
  // A cleaner (systemd-tmpfiles, `rm /tmp/pipe.*`) removes the server's FIFOs; in the
  // sticky directory anyone may then create those names, and the attacker does.
  assert.equal(await isRunning(server), true);
  Deno.removeSync(`${dir}/pipe.in`);
  Deno.removeSync(`${dir}/pipe.out`);
  await nobodyOk("ln", "-s", bait, `${dir}/pipe.in`);
  await nobodyOk("ln", "-s", readBait, `${dir}/pipe.out`);
  // Its next look at its names (every 5 s) finds them taken by something else: it stops,
  // with status 1, and on the way out opens nothing by those names either.
  const stopped = await server.done;
  assert.equal(stopped.code, 1, stopped.stderr);
  assert.match(
    stopped.stderr,
    /^error: Cannot serve on ".*\/pipe\.(in|out)": it now names something else\n$/,
  );
  // The watchers did watch: an open of each bait (by us, now) is seen at once. (The write
  // open fails with ENXIO unless a reader is parked.)
  closeSync(openSync(bait, constants.O_WRONLY | constants.O_NONBLOCK));
  closeSync(openSync(readBait, constants.O_RDONLY | constants.O_NONBLOCK));
  assert.equal((await watcher.done).stdout, "opened\n");
  assert.equal((await readWatcher.done).stdout, "opened\n");
  // The symlinks are left as they are: not ours to remove.
  assert.equal(Deno.readLinkSync(`${dir}/pipe.in`), bait);
  assert.equal(Deno.readLinkSync(`${dir}/pipe.out`), readBait);
});
