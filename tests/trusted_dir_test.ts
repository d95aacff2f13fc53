/**
 * The directory rule (`checkServerDir`) and the wake-up open (`releasePendingOpen`),
 * in-process with real directories and FIFOs; no second user needed (see
 * attacker_test.ts for the attacks themselves).
 *
 * @module
 */
import assert from "node:assert/strict";
import { releasePendingOpen } from "../lib/fifo/fifo_file.ts";
import { makeFifo } from "../lib/fifo/make_fifo.ts";
import { checkServerDir } from "../lib/fifo/server_place.ts";
import {
  entries,
  projectPath,
  requires,
  spawn,
  tempDir,
  threadStates,
  waitForThread,
  waitUntil,
} from "./helpers.ts";

/** A thread parked in `open()` of a FIFO, waiting for its peer. */
const PARKED = / wait_for_partner$/m;

const withRun = requires("--allow-run");

/** Makes a directory with exactly `mode` (no umask). */
function makeDir(path: string, mode: number): string {
  Deno.mkdirSync(path);
  Deno.chmodSync(path, mode);
  return path;
}

async function symlink(target: string, path: string): Promise<void> {
  // `ln -s`: Deno.symlink wants unscoped write access, which the tests do not have.
  assert.equal((await new Deno.Command("ln", { args: ["-s", target, path] }).output()).code, 0);
}

function refusal(dir: string, what: string): (error: Error) => boolean {
  return (error) => {
    assert.equal(error.message, `Cannot use directory "${dir}": ${what}`);
    return true;
  };
}

Deno.test("checkServerDir: /tmp and private dirs pass; sticky passes; loose modes are refused", () => {
  using tmp = tempDir();
  const base = tmp.path;
  checkServerDir("/tmp");
  checkServerDir(base);
  checkServerDir(makeDir(`${base}/sticky`, 0o1777));
  checkServerDir(makeDir(`${base}/sticky-group`, 0o1770));
  checkServerDir(makeDir(`${base}/shared-read`, 0o755));
  const open = makeDir(`${base}/open`, 0o777);
  assert.throws(
    () => checkServerDir(open),
    refusal(open, "it is writable by others without the sticky bit"),
  );
  const others = makeDir(`${base}/others`, 0o703);
  assert.throws(
    () => checkServerDir(others),
    refusal(others, "it is writable by others without the sticky bit"),
  );
  const group = makeDir(`${base}/group`, 0o770);
  assert.throws(
    () => checkServerDir(group),
    refusal(group, "it is writable by its group without the sticky bit"),
  );
  // Nothing was made in any of them (no uid probe either: every owner here is us).
  for (const dir of [open, others, group]) assert.deepEqual(entries(dir), []);
});

Deno.test("checkServerDir: an ancestor others can rearrange is named, however deep", () => {
  using tmp = tempDir();
  const loose = makeDir(`${tmp.path}/loose`, 0o777);
  const deep = makeDir(makeDir(`${loose}/a`, 0o700) + "/b", 0o700);
  assert.throws(
    () => checkServerDir(deep),
    refusal(deep, `its ancestor "${loose}" is writable by others without the sticky bit`),
  );
  // A sticky ancestor is fine: nobody else may rename what is ours in it.
  Deno.chmodSync(loose, 0o1777);
  checkServerDir(deep);
});

withRun(
  "checkServerDir: the dir itself is never followed; a symlinked ancestor is checked where it leads",
  async () => {
    using tmp = tempDir();
    const base = tmp.path;
    const real = makeDir(`${base}/real`, 0o700);
    await symlink(real, `${base}/link`);
    assert.throws(() => checkServerDir(`${base}/link`), refusal(`${base}/link`, "it is a symlink"));
    // link/sub: the link's own directory and its target's chain are both fine.
    const sub = makeDir(`${real}/sub`, 0o700);
    checkServerDir(`${base}/link/sub`);
    // ...until the target's chain is not: the refusal names the real directory.
    const loose = makeDir(`${base}/loose`, 0o777);
    makeDir(`${loose}/target`, 0o700);
    makeDir(`${loose}/target/sub`, 0o700);
    await symlink(`${loose}/target`, `${base}/link2`);
    assert.throws(
      () => checkServerDir(`${base}/link2/sub`),
      refusal(
        `${base}/link2/sub`,
        `its ancestor "${loose}" is writable by others without the sticky bit`,
      ),
    );
    Deno.writeTextFileSync(`${base}/file`, "");
    assert.throws(
      () => checkServerDir(`${base}/file`),
      refusal(`${base}/file`, "it is not a directory"),
    );
    assert.throws(
      () => checkServerDir(`${base}/missing`),
      (error: Error) =>
        error instanceof Deno.errors.NotFound &&
        error.message === `Cannot use directory "${base}/missing": it does not exist`,
    );
    assert.deepEqual(entries(sub), []);
  },
);

withRun(
  "checkServerDir: under --allow-read=/tmp (the card's), ancestors it may not read are skipped, without a prompt",
  async () => {
    using tmp = tempDir();
    const dir = makeDir(`${tmp.path}/dir`, 0o700);
    const loose = makeDir(`${tmp.path}/loose`, 0o777);
    const code = `
    import { checkServerDir } from ${JSON.stringify(projectPath("lib/fifo/server_place.ts"))};
    for (const dir of Deno.args) {
      try { checkServerDir(dir); console.log("ok"); } catch (e) { console.log(e.message); }
    }`;
    const { done } = spawn(Deno.execPath(), [
      "eval",
      `--allow-read=/tmp,${projectPath("lib")}`,
      "--allow-write=/tmp",
      code,
      "/tmp",
      dir,
      loose,
    ], { deadline: 20_000 });
    const result = await done;
    assert.deepEqual(
      [result.code, result.stderr, result.stdout],
      [
        0,
        "",
        `ok\nok\nCannot use directory "${loose}": it is writable by others without the sticky bit\n`,
      ],
    );
  },
);

withRun(
  "releasePendingOpen: opens a FIFO of ours, never a symlink, a stranger or a replacement",
  async () => {
    using tmp = tempDir();
    const fifo = `${tmp.path}/fifo`;
    const created = await makeFifo(fifo);
    const link = `${tmp.path}/link`;
    await symlink(fifo, link);
    // A reader parked on our FIFO, as the plain loop parks; `settled` flips when it returns.
    let settled = false;
    const parked = Deno.open(fifo, { read: true }).then((file) => {
      settled = true;
      return file;
    });
    await waitForThread(Deno.pid, PARKED, "the open to park");
    try {
      releasePendingOpen(link, "read"); // through a symlink: refused
      releasePendingOpen(fifo, "read", { uid: created.uid! + 1 }); // not the owner asked for
      releasePendingOpen(fifo, "read", { identity: { ...created, ino: created.ino! + 1 } });
      // A release is an open by the calling thread: had one happened, the parked thread
      // would already be runnable, out of wait_for_partner, when the call returned.
      assert.match(await threadStates(Deno.pid), PARKED, "a refused wake-up open released it");
      assert.equal(settled, false, "a refused wake-up open released the parked open");
      releasePendingOpen(fifo, "read", { identity: created });
      await waitUntil(() => settled, 5000, "the wake-up open of our FIFO to release it");
    } finally {
      if (!settled) Deno.openSync(fifo, { write: true }).close(); // never leave it parked
      (await parked).close();
    }
  },
);
