/**
 * The benchmark's subprocesses (every one with a deadline) and what /proc says of them,
 * on the helpers the tests use too (`tools/`).
 *
 * @module
 */
import { type Finished, type Proc, spawn as spawnProc, type SpawnOptions } from "../tools/spawn.ts";
import { memoryOf, readProc, readsProcDirectly, threadStates } from "../tools/proc_files.ts";

export { type Memory, memoryOf, readProc } from "../tools/proc_files.ts";

/** Every child still running: killed on interrupt. */
export const live = new Set<Deno.ChildProcess>();
let pinned = false;

/** Runs every later process on CPU 0 (taskset). */
export function pinToCpu0(): void {
  pinned = true;
}

/** A benchmark subprocess: no deadline of its own ({@linkcode finish} sets one), killed on interrupt. */
export type Spawned = Proc;

/** Spawns `command` (on CPU 0 after {@linkcode pinToCpu0}), keeping the last MiB of output. */
export function spawn(
  command: string,
  args: string[],
  options: Pick<SpawnOptions, "stdin" | "stdout" | "onStdout" | "cwd"> = {},
): Spawned {
  const proc = spawnProc(command, args, {
    ...options,
    deadline: Infinity,
    keep: 1 << 20,
    env: { NO_COLOR: "1" },
    prefix: pinned ? ["taskset", "-c", "0"] : undefined,
  });
  live.add(proc.child);
  proc.exited.finally(() => live.delete(proc.child));
  return proc;
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for `proc` to exit for at most `ms`; kills it with SIGKILL past that. */
export async function finish(proc: Spawned, ms: number): Promise<Finished | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timedOut = new Promise<"timeout">((r) => timer = setTimeout(() => r("timeout"), ms));
  const result = await Promise.race([proc.exited, timedOut]);
  clearTimeout(timer);
  if (result === "timeout") {
    proc.kill("SIGKILL");
    await proc.exited;
    return undefined;
  }
  return result;
}

/** Runs a command to its end within `seconds`; throws with its stderr when it fails. */
export async function run(command: string, args: string[], seconds: number): Promise<string> {
  const proc = spawn(command, args);
  const status = await finish(proc, seconds * 1000);
  if (!status) throw new Error(`${command} took longer than ${seconds} s: killed`);
  if (!status.success) {
    throw new Error(`${command} exited with ${status.code}: ${lastLine(proc.stderr())}`);
  }
  return proc.stdout();
}

/**
 * What a process's stderr says went wrong: from its first `error:` line (else its last
 * line) on, stack frames left out, at most 300 characters.
 */
export function lastLine(text: string): string {
  const lines = text.trim().split("\n").map((l) => l.trim())
    .filter((l) => l && !/^at /.test(l) && !/^\^+$/.test(l));
  const first = lines.findIndex((l) => /^error\b/i.test(l));
  const picked = first < 0 ? lines.slice(-1) : lines.slice(first);
  return (picked.join(" / ") || "no output").replace(/^error: /, "").slice(0, 300);
}

export function parseResult(text: string): { ops: number; bytes: number; ns: number } {
  const line = text.trim().split("\n").at(-1) ?? "";
  const result = JSON.parse(line);
  if (!(result.ops > 0 && result.ns > 0)) throw new Error(`unexpected output: ${line}`);
  return result;
}

export async function exists(command: string, args: string[]): Promise<string | undefined> {
  try {
    return (await run(command, args, 10)).trim() || "present";
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------
// /proc and memory

/** Polls a process's peak RSS (VmHWM) while it runs; `stop()` returns the largest seen. */
export function watchMemory(pid: number) {
  let peak = 0;
  let busy: Promise<void> | undefined;
  const sample = () =>
    busy ??= memoryOf(pid).then((memory) => {
      if (memory) peak = Math.max(peak, memory.hwmKiB, memory.rssKiB);
    }).finally(() => busy = undefined);
  sample();
  const timer = setInterval(sample, readsProcDirectly() ? 25 : 100);
  let stopped: Promise<number | undefined> | undefined;
  return {
    /** Takes a last sample (the process must still be running for it to count). */
    stop(): Promise<number | undefined> {
      stopped ??= (async () => {
        clearInterval(timer);
        await busy;
        await sample();
        return peak || undefined;
      })();
      return stopped;
    },
  };
}

/** Whether some thread of `pid` is parked opening a FIFO (the server waits for a client). */
export async function parkedInOpen(pid: number): Promise<boolean | undefined> {
  const states = await threadStates(pid);
  if (/ wait_for_partner$/m.test(states)) return true;
  return / [a-z_]+$/m.test(states) ? false : undefined; // no wchan at all: cannot tell
}

/** CPU time and context switches of a whole process (all its threads) so far. */
export interface Counters {
  /** User + system CPU seconds. */
  cpuSeconds: number;
  /** Voluntary + involuntary context switches of each thread (by thread id): its wake-ups. */
  switches: Map<string, number>;
  /** When read (ms, `performance.now()`). */
  at: number;
}

/**
 * Context switches between two readings: of the threads in both, and all of those that
 * started in between (a thread that ended in between took its count with it).
 */
export function switchesBetween(before: Counters, after: Counters): number {
  let total = 0;
  for (const [tid, count] of after.switches) total += count - (before.switches.get(tid) ?? 0);
  return total;
}

/** Reads {@linkcode Counters}; `undefined` when /proc cannot tell. */
export async function countersOf(pid: number): Promise<Counters | undefined> {
  const files = await readProc([`/proc/${pid}/stat`, `/proc/${pid}/task/*/status`]);
  if (!files || files.length < 2) return undefined;
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
  const fields = files[0].slice(files[0].lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  const switches = new Map<string, number>();
  for (const status of files.slice(1)) {
    let count = 0;
    for (const match of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) {
      count += Number(match[1]);
    }
    switches.set(status.match(/^Pid:\s+(\d+)/m)?.[1] ?? "", count);
  }
  // USER_HZ is 100 on every Linux this runs on.
  return Number.isFinite(ticks)
    ? { cpuSeconds: ticks / 100, switches, at: performance.now() }
    : undefined;
}
