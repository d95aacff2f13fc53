/**
 * Test helpers: private directories, real subprocesses with deadlines, and the check that
 * nothing is left behind. Every helper here ends by itself.
 *
 * @module
 */
import assert from "node:assert/strict";
import { fileURLToPath } from "node:url";
import { isServed } from "../lib/fifo/fifo_file.ts";
import { connect, type ConnectOptions } from "../lib/session/connect.ts";
import { type Proc, spawn, type SpawnOptions } from "../tools/spawn.ts";
import { waitForThread } from "../tools/proc_files.ts";

export { type Finished, type Proc, spawn } from "../tools/spawn.ts";
export {
  ioOf,
  memoryOf,
  procField,
  threadStates,
  waitForProc,
  waitForStopped,
  waitForThread,
} from "../tools/proc_files.ts";

/** A permission flag a test may need beyond the card's `--allow-read --allow-write`. */
export type PermissionFlag = "--allow-run" | "--allow-env";

const PERMISSION_OF: Record<PermissionFlag, Deno.PermissionDescriptor> = {
  "--allow-run": { name: "run" },
  "--allow-env": { name: "env" },
};

const toolChecks = new Map<string, string | undefined>();

/**
 * Why `tool` cannot be used, or `undefined` when it can: runs `tool --version` (`-V` for
 * socat) once. Only call it where `--allow-run` is granted.
 */
export function missingTool(tool: string): string | undefined {
  if (!toolChecks.has(tool)) {
    let reason: string | undefined;
    try {
      new Deno.Command(tool, {
        args: [tool === "socat" ? "-V" : "--version"],
        stdin: "null",
        stdout: "null",
        stderr: "null",
      }).outputSync();
    } catch (error) {
      reason = error instanceof Deno.errors.NotFound
        ? `${tool} is not installed`
        : `${tool} cannot run: ${(error as Error).message}`;
    }
    toolChecks.set(tool, reason);
  }
  return toolChecks.get(tool);
}

/** Why a test that needs `needs` (flags and tools) cannot run here, or `undefined`. */
export function skipReason(needs: (PermissionFlag | string)[]): string | undefined {
  const flags = needs.filter((n): n is PermissionFlag => n.startsWith("--"));
  const missing = flags.filter((flag) =>
    Deno.permissions.querySync(PERMISSION_OF[flag]).state !== "granted"
  );
  if (missing.length) return `needs ${missing.join(" ")}`;
  for (const tool of needs.filter((n) => !n.startsWith("--"))) {
    const reason = missingTool(tool);
    if (reason) return `optional peer missing: ${reason}`;
  }
  return undefined;
}

/** `Deno.test`, for tests that need more than the card's permissions or an outside tool. */
export interface GatedTest {
  (name: string, fn: (t: Deno.TestContext) => void | Promise<void>): void;
  (definition: Deno.TestDefinition): void;
}

/**
 * Returns a `Deno.test` for tests that need `needs`: permission flags beyond
 * `--allow-read --allow-write` (`"--allow-run"`) and tools (`"python3"`, `"cc"`). Where
 * one is missing the test is reported as ignored, its name saying what it needs, so
 * `deno test --allow-read --allow-write` runs what it can and passes.
 *
 * @example Usage
 * ```ts ignore
 * const test = requires("--allow-run", "python3");
 * test("talks to Python", async () => {});
 * ```
 */
export function requires(...needs: (PermissionFlag | string)[]): GatedTest {
  return ((nameOrDefinition: string | Deno.TestDefinition, fn?: Deno.TestDefinition["fn"]) => {
    const definition = typeof nameOrDefinition === "string"
      ? { name: nameOrDefinition, fn: fn! }
      : nameOrDefinition;
    const reason = definition.ignore ? undefined : skipReason(needs);
    Deno.test(
      reason
        ? { ...definition, name: `${definition.name} [ignored: ${reason}]`, ignore: true }
        : definition,
    );
  }) as GatedTest;
}

/** server.ts's start-up line (printed unless `--quiet`). */
export const START_LINE = /^server: \S+ -> \S+.*, framing \w+; stop: Ctrl-C.*\n/;

/** A server's standard output without its start-up line, which must come first if at all. */
export function withoutStartLine(stdout: string): string {
  return stdout.replace(START_LINE, "");
}

/** Absolute path of a file in the project. */
export function projectPath(path: string): string {
  return fileURLToPath(new URL(`../${path}`, import.meta.url));
}

/** A private directory under /tmp (mode 0700), removed by `using`. */
export interface TempDir extends Disposable {
  path: string;
}

/** Makes a private directory under /tmp, for one test's FIFOs. */
export function tempDir(prefix = "fifo-test-"): TempDir {
  const path = Deno.makeTempDirSync({ dir: "/tmp", prefix });
  return {
    path,
    [Symbol.dispose]() {
      Deno.removeSync(path, { recursive: true });
    },
  };
}

/**
 * Lists what is in `dir`, sorted; a server's private directory (random suffix) is listed
 * as `.NAME.keep-*`, so that tests can require exactly one while it runs and none after.
 */
export function entries(dir: string): string[] {
  return [...Deno.readDirSync(dir)].map((e) => e.name.replace(/^(\.[^/]+\.keep-).*$/, "$1*"))
    .sort();
}

/** Waits until `check` returns true, polling; throws after `ms`. */
export async function waitUntil(
  check: () => boolean,
  ms = 10_000,
  what = "the condition",
): Promise<void> {
  for (const deadline = Date.now() + ms; Date.now() < deadline;) {
    if (check()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
}

/** Whether a FIFO exists at `path`. */
export function isFifo(path: string): boolean {
  try {
    return Deno.lstatSync(path).isFifo === true;
  } catch {
    return false;
  }
}

/** The flags our CLIs need for `dir`: the card's, scoped to it. */
export function flagsFor(_script: "server.ts" | "client.ts", dir: string): string[] {
  return [`--allow-read=${dir}`, `--allow-write=${dir}`, "--allow-run=mkfifo"];
}

/** Options for {@linkcode runCli}, {@linkcode serve} and the drivers' spawners. */
export type RunOptions = SpawnOptions;

/** Runs one of our CLIs under Deno with the scoped flags for `dir`. */
export function runCli(
  script: "server.ts" | "client.ts",
  dir: string,
  args: string[],
  options: RunOptions & { flags?: string[] } = {},
): Proc {
  return spawn(
    Deno.execPath(),
    [
      "run",
      ...(options.flags ?? flagsFor(script, dir)),
      projectPath(script),
      "--dir",
      dir,
      ...args,
    ],
    options,
  );
}

/**
 * Starts server.ts in `dir` (logging unless `args` has `--quiet`) and waits until it
 * serves: `NAME.ctl` (or `NAME.in` with `--no-sessions`), the FIFO it publishes last, has a
 * reader. A server that exits instead, or never gets there, fails the call.
 */
export async function serve(
  dir: string,
  args: string[] = [],
  options: RunOptions & { flags?: string[] } = {},
) {
  const server = runCli("server.ts", dir, args, { deadline: 20_000, ...options });
  const name = args.includes("--name") ? args[args.indexOf("--name") + 1] : "pipe";
  const ready = `${dir}/${name}.${args.includes("--no-sessions") ? "in" : "ctl"}`;
  // A reader, not just a FIFO: a stale one may sit there until the server replaces it.
  const uid = Deno.statSync(dir).uid!;
  try {
    await Promise.race([
      waitUntil(() => isServed(ready, uid), 15_000, `the server's ${ready}`),
      server.done.then((r) => {
        throw new Error(`The server exited early (${r.code}): ${r.stderr}`);
      }),
    ]);
  } catch (error) {
    await server[Symbol.asyncDispose]();
    if (error instanceof Error) {
      error.message += `\nentries: ${entries(dir).join(" ")}\nserver stdout: ${server.stdout()}` +
        `\nserver stderr: ${server.stderr()}`;
    }
    throw error;
  }
  return server;
}

/**
 * Stops a server with `signal`: it must exit 0 without an uncaught error. Returns its last
 * line of output (`server stopped: …`).
 */
export async function stopServer(server: Proc, signal: Deno.Signal = "SIGTERM"): Promise<string> {
  server.child.kill(signal);
  const { code, stdout, stderr } = await server.done;
  assert.equal(code, 0, `exit status after ${signal}; stderr: ${stderr}`);
  assert.doesNotMatch(stderr, /Uncaught|panicked/);
  return stdout.trim().split("\n").at(-1) ?? "";
}

/** One checked exchange through a session and one through the plain pair, in `dir`. */
export async function roundTrip(
  dir: string,
  label: string,
  options: Pick<ConnectOptions, "framing" | "maxMessage"> = {},
): Promise<void> {
  for (const mode of ["session", "shared"] as const) {
    await using conn = await connect({ dir, ...options, mode, timeout: 5000 });
    const text = `ok ${label} ${mode}`;
    await conn.send(text);
    const reply = await conn.receive();
    assert.equal(reply && new TextDecoder().decode(reply), text, `round trip (${mode}) ${label}`);
  }
}

/** {@linkcode serve} with `--quiet`. */
export function startServer(dir: string, args: string[] = [], options: RunOptions = {}) {
  return serve(dir, ["--quiet", ...args], options);
}

/** Every FIFO under `root`, recursively (for "nothing left behind" checks). */
export function fifosUnder(root: string): string[] {
  const found: string[] = [];
  const walk = (dir: string) => {
    let list: Deno.DirEntry[];
    try {
      list = [...Deno.readDirSync(dir)];
    } catch {
      return; // vanished or not ours to read
    }
    for (const entry of list) {
      const path = `${dir}/${entry.name}`;
      if (entry.isDirectory) walk(path);
      else if (!entry.isFile && !entry.isSymlink && isFifo(path)) found.push(path);
    }
  };
  walk(root);
  return found.sort();
}

/** Whether a spawned {@linkcode Proc} is still running (its `done` has not settled). */
export function isRunning(proc: Proc): Promise<boolean> {
  // A timer, not a resolved promise: `done` settled long ago still needs a few microtasks.
  return Promise.race([
    proc.done.then(() => false, () => false),
    new Promise<boolean>((resolve) => setTimeout(() => resolve(true), 0)),
  ]);
}

/** Starts a `tests/soak_client.ts` driver on the server in `dir`, with `args` after `--dir`. */
export function spawnSoakClient(dir: string, args: string[], options: RunOptions = {}): Proc {
  return spawn(Deno.execPath(), [
    "run",
    `--allow-read=${dir}`,
    `--allow-write=${dir}`,
    "--allow-run=mkfifo",
    projectPath("tests/soak_client.ts"),
    "--dir",
    dir,
    ...args,
  ], options);
}

/**
 * Waits until the server's plain-pair thread (its worker, `worker-N`) waits in
 * `open(NAME.in)` for the next writer: it has let go of the last client, so the next one
 * does not share its stream.
 */
export function plainPairIdle(pid: number, what: string, ms = 10_000): Promise<void> {
  return waitForThread(pid, /^worker-\d+ wait_for_partner$/m, what, { ms });
}

/** One plain round trip through the public names, as a shell does it: the reply's text. */
export async function plainRoundTrip(dir: string, text: string): Promise<string> {
  const shell = spawn("sh", [
    "-c",
    'exec 3>"$1/pipe.in"; exec 4<"$1/pipe.out"; echo "$2" >&3; exec 3>&-; cat <&4',
    "sh",
    dir,
    text,
  ], { deadline: 10_000 });
  return (await shell.done).stdout;
}
