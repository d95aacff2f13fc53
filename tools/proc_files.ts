/**
 * What `/proc` says of a process: memory, CPU, context switches, what each thread waits
 * in. Deno lets only `--allow-all` read `/proc/PID/*` directly; with less, the files are
 * read through `sh` (which `--allow-run` allows).
 *
 * @module
 */

let direct = true;

/** Reads /proc files (or, with a `*`, what a shell glob names); `undefined` on failure. */
export async function readProc(paths: string[]): Promise<string[] | undefined> {
  if (direct && !paths.some((p) => p.includes("*"))) {
    try {
      return paths.map((path) => Deno.readTextFileSync(path));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) return undefined;
      direct = false;
    }
  }
  // Our own paths (digits and fixed names only), each file followed by a separator byte.
  const script = paths.map((p) => `for f in ${p}; do cat "$f"; printf '\\036'; done`);
  try {
    const { stdout } = await new Deno.Command("sh", {
      args: ["-c", `${script.join("; ")} 2>/dev/null`],
      stdout: "piped",
      stderr: "null",
    }).output();
    const parts = new TextDecoder().decode(stdout).split("\x1e");
    parts.pop();
    return parts.length ? parts : undefined;
  } catch {
    return undefined;
  }
}

/** Whether {@linkcode readProc} reads directly (cheap enough to sample often). */
export function readsProcDirectly(): boolean {
  return direct;
}

/** Resident memory of a process in KiB: now (`VmRSS`) and its peak so far (`VmHWM`). */
export interface Memory {
  rssKiB: number;
  hwmKiB: number;
}

/** {@linkcode Memory} of process `pid`; `undefined` once it is gone. */
export async function memoryOf(pid: number): Promise<Memory | undefined> {
  const [status] = await readProc([`/proc/${pid}/status`]) ?? [];
  // Gone (or a zombie, whose status has no memory lines): nothing to say.
  if (!status?.includes("VmHWM:")) return undefined;
  return { rssKiB: procField(status, "VmRSS"), hwmKiB: procField(status, "VmHWM") };
}

/** The number after `name:` in a `/proc` file (`rchar`, `wchar` of `io`; `VmRSS` of `status`). */
export function procField(text: string, name: string): number {
  const value = text.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1];
  if (value === undefined) throw new Error(`No field ${name} in ${JSON.stringify(text)}`);
  return Number(value);
}

/** Bytes process `pid` has read (`rchar`) and written (`wchar`) so far, any file. */
export async function ioOf(pid: number): Promise<{ read: number; written: number }> {
  const [io] = await readProc([`/proc/${pid}/io`]) ?? [];
  if (io === undefined) throw new Error(`Cannot read /proc/${pid}/io: is process ${pid} gone?`);
  return { read: procField(io, "rchar"), written: procField(io, "wchar") };
}

/**
 * Polls `/proc/PID/PATTERN` (a shell glob such as `task/*\/wchan`) until `check` holds
 * for the files' contents; throws after `ms`, or at once when the process is gone.
 */
export async function waitForProc(
  pid: number,
  pattern: string,
  check: (texts: string[]) => boolean,
  what: string,
  ms = 10_000,
): Promise<void> {
  for (const deadline = Date.now() + ms;;) {
    const texts = await readProc([`/proc/${pid}/${pattern}`]) ?? [];
    if (texts.length === 0) throw new Error(`Process ${pid} is gone while waiting for ${what}`);
    if (check(texts)) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** `comm wchan` of every thread of process `pid`, a line each; `""` once it is gone. */
export async function threadStates(pid: number): Promise<string> {
  const { stdout } = await new Deno.Command("sh", {
    args: [
      "-c",
      'for t in /proc/$1/task/*; do echo "$(cat $t/comm 2>/dev/null) $(cat $t/wchan 2>/dev/null)"; done',
      "sh",
      String(pid),
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(stdout);
}

/**
 * Waits until a thread of process `pid` shows `pattern` in its `comm wchan` line, e.g.
 * `/ wait_for_partner$/m` for a thread parked in `open()` of a FIFO, or
 * `/ \w*pipe_write$/m` for one blocked writing a full pipe (`anon_pipe_write` since
 * Linux 6.x). `expect: false` waits until none does.
 */
export async function waitForThread(
  pid: number,
  pattern: RegExp,
  what: string,
  { ms = 10_000, expect = true }: { ms?: number; expect?: boolean } = {},
): Promise<void> {
  for (const deadline = Date.now() + ms;;) {
    if (pattern.test(await threadStates(pid)) === expect) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits until every thread of process `pid` is stopped (state `T`, as SIGSTOP leaves it). */
export function waitForStopped(pid: number, what: string, ms = 10_000): Promise<void> {
  // The state is the field after the command's closing parenthesis.
  const stopped = (stat: string) => stat.slice(stat.lastIndexOf(")") + 2).startsWith("T");
  return waitForProc(pid, "task/*/stat", (stats) => stats.every(stopped), what, ms);
}
