/**
 * What the kernel says of another process, for tests that wait for an observable state
 * instead of sleeping: its `/proc/PID/status` (stopped?), its threads' `wchan` (blocked in
 * a pipe write?), its `/proc/PID/io` counters (bytes read and written so far).
 *
 * Read through `sh` and `cat`: Deno grants `/proc/PID/*` only to `--allow-all`, and
 * `--allow-run` is what the tests have.
 *
 * @module
 */

/** The contents of the files `/proc/PID/PATTERN` matches (`status`, `task/*\/wchan`). */
export async function readProc(pid: number, pattern: string): Promise<string[]> {
  const { stdout } = await new Deno.Command("sh", {
    args: [
      "-c",
      // Unquoted $2: the glob expands. A NUL after each file: wchan has no newline.
      'for f in /proc/$1/$2; do cat "$f" 2>/dev/null && printf "\\0"; done',
      "sh",
      String(pid),
      pattern,
    ],
    stdout: "piped",
    stderr: "null",
  }).output();
  return new TextDecoder().decode(stdout).split("\0").slice(0, -1);
}

/** The number after `name:` in a `/proc` file (`rchar`, `wchar` of `io`; `VmRSS` of `status`). */
export function procField(text: string, name: string): number {
  const value = text.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1];
  if (value === undefined) throw new Error(`No field ${name} in ${JSON.stringify(text)}`);
  return Number(value);
}

/**
 * Polls `/proc/PID/PATTERN` until `check` holds for its contents; throws after `ms`, or at
 * once when the process is gone.
 */
export async function waitForProc(
  pid: number,
  pattern: string,
  check: (texts: string[]) => boolean,
  what: string,
  ms = 10_000,
): Promise<void> {
  for (const deadline = Date.now() + ms;;) {
    const texts = await readProc(pid, pattern);
    if (texts.length === 0) throw new Error(`Process ${pid} is gone while waiting for ${what}`);
    if (check(texts)) return;
    if (Date.now() > deadline) throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** Waits until process `pid` is stopped (SIGSTOP delivered: `State: T`). */
export function waitStopped(pid: number, what = `process ${pid} to stop`): Promise<void> {
  return waitForProc(pid, "status", ([status]) => /^State:\s+T/m.test(status), what);
}

/** Bytes process `pid` has read (`rchar`) and written (`wchar`) so far, any file. */
export async function ioOf(pid: number): Promise<{ read: number; written: number }> {
  const [io] = await readProc(pid, "io");
  if (io === undefined) throw new Error(`Cannot read /proc/${pid}/io: is process ${pid} gone?`);
  return { read: procField(io, "rchar"), written: procField(io, "wchar") };
}
