/**
 * The benchmark's subprocesses (every one with a deadline) and what /proc says of them.
 *
 * @module
 */

/** Every child still running: killed on interrupt. */
export const live = new Set<Deno.ChildProcess>();
let pinned = false;

/** Runs every later process on CPU 0 (taskset). */
export function pinToCpu0(): void {
  pinned = true;
}

function wrap(command: string, args: string[]): [string, string[]] {
  return pinned ? ["taskset", ["-c", "0", command, ...args]] : [command, args];
}

export interface Spawned {
  child: Deno.ChildProcess;
  pid: number;
  /** Settles when the process has exited (killed or not); never rejects. */
  exited: Promise<Deno.CommandStatus | undefined>;
  stdout(): string;
  stderr(): string;
  kill(signal?: Deno.Signal): void;
}

/** Collects a stream into text in the background. */
function collect(stream: ReadableStream<Uint8Array> | null, onChunk?: (text: string) => void) {
  let text = "";
  const done = (async () => {
    if (!stream) return;
    const textDecoder = new TextDecoder();
    try {
      for await (const chunk of stream) {
        const piece = textDecoder.decode(chunk, { stream: true });
        text += piece;
        if (text.length > 1 << 20) text = text.slice(-(1 << 19));
        onChunk?.(piece);
      }
    } catch { /* killed */ }
  })();
  return { text: () => text, done };
}

export function spawn(
  command: string,
  args: string[],
  options: {
    stdin?: "piped" | "null";
    stdout?: "piped" | "null";
    onStdout?: (text: string) => void;
    cwd?: string;
  } = {},
): Spawned {
  const [cmd, argv] = wrap(command, args);
  const child = new Deno.Command(cmd, {
    args: argv,
    stdin: options.stdin ?? "null",
    stdout: options.stdout ?? "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
    cwd: options.cwd,
  }).spawn();
  live.add(child);
  const out = collect(options.stdout === "null" ? null : child.stdout, options.onStdout);
  const err = collect(child.stderr);
  const exited = child.status.then(
    async (status) => {
      await Promise.all([out.done, err.done]);
      return status;
    },
    () => undefined,
  ).finally(() => live.delete(child));
  return {
    child,
    pid: child.pid,
    exited,
    stdout: out.text,
    stderr: err.text,
    kill(signal: Deno.Signal = "SIGKILL") {
      try {
        child.kill(signal);
      } catch { /* already gone */ }
    },
  };
}

export const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits for `proc` to exit for at most `ms`; kills it with SIGKILL past that. */
export async function finish(proc: Spawned, ms: number): Promise<Deno.CommandStatus | undefined> {
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

/** Stops a server: SIGTERM, then SIGKILL after `ms`. */
export async function stop(proc: Spawned, ms = 5000): Promise<void> {
  proc.kill("SIGTERM");
  await finish(proc, ms);
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

/**
 * Deno 2 reads /proc only with `--allow-all` (`--allow-read` alone is refused with
 * NotCapable). Without it, /proc is read through a `sh` subprocess: slower, so sampled less
 * often.
 */
let procDirect = true;

/** Reads /proc files (or, with a `*`, what a shell glob names), `undefined` on failure. */
export async function readProc(paths: string[]): Promise<string[] | undefined> {
  if (procDirect && !paths.some((p) => p.includes("*"))) {
    try {
      return paths.map((path) => Deno.readTextFileSync(path));
    } catch (error) {
      if (!(error instanceof Deno.errors.NotCapable)) return undefined;
      procDirect = false;
    }
  }
  try {
    // Our own paths (digits and fixed names only), each file followed by a separator byte.
    const script = paths.map((p) => `for f in ${p}; do cat "$f"; printf '\\036'; done`);
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

export interface Memory {
  rssKiB: number;
  hwmKiB: number;
}

export async function memoryOf(pid: number): Promise<Memory | undefined> {
  const [status] = await readProc([`/proc/${pid}/status`]) ?? [""];
  const field = (name: string) => Number(status.match(new RegExp(`^${name}:\\s+(\\d+)`, "m"))?.[1]);
  const rssKiB = field("VmRSS");
  const hwmKiB = field("VmHWM");
  return Number.isFinite(rssKiB) && Number.isFinite(hwmKiB) ? { rssKiB, hwmKiB } : undefined;
}

/** Polls a process's peak RSS (VmHWM) while it runs; `stop()` returns the largest seen. */
export function watchMemory(pid: number) {
  let peak = 0;
  let busy: Promise<void> | undefined;
  const sample = () =>
    busy ??= memoryOf(pid).then((memory) => {
      if (memory) peak = Math.max(peak, memory.hwmKiB, memory.rssKiB);
    }).finally(() => busy = undefined);
  sample();
  const timer = setInterval(sample, procDirect ? 25 : 100);
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
  let wchans: string[] | undefined;
  try {
    const tasks = [...Deno.readDirSync(`/proc/${pid}/task`)].map((t) => t.name);
    wchans = await readProc(tasks.map((t) => `/proc/${pid}/task/${t}/wchan`));
  } catch (error) {
    if (!(error instanceof Deno.errors.NotCapable)) return undefined;
    procDirect = false;
    wchans = await readProc([`/proc/${pid}/task/*/wchan`]);
  }
  const names = (wchans ?? []).map((w) => w.trim());
  if (names.includes("wait_for_partner")) return true;
  return names.some((w) => w && w !== "0") ? false : undefined;
}

/** CPU time and context switches of a whole process (all its threads) so far. */
export interface Counters {
  /** User + system CPU seconds. */
  cpuSeconds: number;
  /** Voluntary + involuntary context switches summed over its threads: its wake-ups. */
  switches: number;
  /** When read (ms, `performance.now()`). */
  at: number;
}

/** Reads {@linkcode Counters}; `undefined` when /proc cannot tell. */
export async function countersOf(pid: number): Promise<Counters | undefined> {
  const files = await readProc([`/proc/${pid}/stat`, `/proc/${pid}/task/*/status`]);
  if (!files || files.length < 2) return undefined;
  // Fields after the command's closing parenthesis: utime and stime are the 12th and 13th.
  const fields = files[0].slice(files[0].lastIndexOf(")") + 2).split(" ");
  const ticks = Number(fields[11]) + Number(fields[12]);
  let switches = 0;
  for (const status of files.slice(1)) {
    for (const match of status.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)/gm)) {
      switches += Number(match[1]);
    }
  }
  // USER_HZ is 100 on every Linux this runs on.
  return Number.isFinite(ticks)
    ? { cpuSeconds: ticks / 100, switches, at: performance.now() }
    : undefined;
}
