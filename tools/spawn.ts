/**
 * The one way the tests, the benchmark and the demo run a subprocess: output collected,
 * a deadline past which it is killed, and `await using` to kill it on the way out.
 *
 * @module
 */

/** How a {@linkcode Proc} ended, with everything it printed. */
export interface Finished {
  code: number;
  signal: Deno.Signal | null;
  success: boolean;
  stdout: string;
  stderr: string;
}

/** A running subprocess whose output is collected; killed by `await using`. */
export interface Proc extends AsyncDisposable {
  child: Deno.ChildProcess;
  pid: number;
  /** Settles when it has exited; rejects if it outlives its deadline (it is then killed). */
  done: Promise<Finished>;
  /** Settles when it has exited, killed or not; never rejects. */
  exited: Promise<Finished>;
  /** Output so far. */
  stdout(): string;
  stderr(): string;
  /** Writes to its stdin (when `stdin: "piped"`). */
  write(text: string | Uint8Array): Promise<void>;
  closeStdin(): Promise<void>;
  /** Sends `signal` (default SIGKILL) unless it has exited. */
  kill(signal?: Deno.Signal): void;
}

/** Options for {@linkcode spawn}. */
export interface SpawnOptions {
  /** Kill it (SIGKILL) and reject `done` after this many ms; `Infinity` for never. @default {30000} */
  deadline?: number;
  /** @default {"null"} */
  stdin?: "piped" | "null";
  /** `"null"` for a process whose output nobody reads. @default {"piped"} */
  stdout?: "piped" | "null";
  /** Added to the inherited environment. */
  env?: Record<string, string>;
  cwd?: string;
  /** Called with each piece of stdout as it arrives. */
  onStdout?: (text: string) => void;
  /** Called with each piece of stderr as it arrives. */
  onStderr?: (text: string) => void;
  /** Keep only the last this many characters of each output (a long run's log). @default {Infinity} */
  keep?: number;
  /** Run the command through this one (e.g. `["taskset", "-c", "0"]`). */
  prefix?: string[];
}

/** Spawns `command` with `args`, collecting its output, under a deadline. */
export function spawn(command: string, args: string[], options: SpawnOptions = {}): Proc {
  const argv = [...options.prefix ?? [], command, ...args];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: options.stdin ?? "null",
    stdout: options.stdout ?? "piped",
    stderr: "piped",
    env: options.env,
    cwd: options.cwd,
  }).spawn();
  const keep = options.keep ?? Infinity;
  const out = collect(options.stdout === "null" ? null : child.stdout, keep, options.onStdout);
  const err = collect(child.stderr, keep, options.onStderr);
  const kill = (signal: Deno.Signal = "SIGKILL") => {
    try {
      child.kill(signal);
    } catch { /* already exited */ }
  };
  const finished = child.status.then(async (status): Promise<Finished> => {
    await Promise.all([out.done, err.done]);
    return { ...status, stdout: out.text(), stderr: err.text() };
  });
  const deadline = options.deadline ?? 30_000;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const expired = new Promise<never>((_, reject) => {
    if (deadline === Infinity) return;
    timer = setTimeout(() => {
      kill();
      reject(
        new Error(
          `${argv.join(" ")} outlived its ${deadline} ms deadline\n` +
            `stdout: ${out.text()}\nstderr: ${err.text()}`,
        ),
      );
    }, deadline);
  });
  const done = Promise.race([finished, expired]).finally(() => clearTimeout(timer));
  done.catch(() => {}); // observed by the caller; no unhandled rejection meanwhile
  const writer = options.stdin === "piped" ? child.stdin.getWriter() : undefined;
  return {
    child,
    pid: child.pid,
    done,
    exited: finished,
    stdout: out.text,
    stderr: err.text,
    async write(text) {
      await writer!.write(typeof text === "string" ? new TextEncoder().encode(text) : text);
    },
    async closeStdin() {
      await writer!.close();
    },
    kill,
    async [Symbol.asyncDispose]() {
      kill();
      await done.catch(() => {});
    },
  };
}

/** Stops `proc`: SIGTERM, then SIGKILL if it is still there after `ms`. */
export async function stopProcess(proc: Proc, ms = 5000): Promise<Finished | undefined> {
  proc.kill("SIGTERM");
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<"late">((resolve) => timer = setTimeout(() => resolve("late"), ms));
  const result = await Promise.race([proc.exited, late]).finally(() => clearTimeout(timer));
  if (result !== "late") return result;
  proc.kill("SIGKILL");
  await proc.exited;
  return undefined;
}

/** Collects a stream into text in the background, keeping its last `keep` characters. */
function collect(
  stream: ReadableStream<Uint8Array> | null,
  keep: number,
  onText?: (text: string) => void,
) {
  let text = "";
  const done = (async () => {
    if (!stream) return;
    try {
      for await (const piece of stream.pipeThrough(new TextDecoderStream())) {
        text += piece;
        if (text.length > 2 * keep) text = text.slice(-keep);
        onText?.(piece);
      }
    } catch { /* killed mid-write */ }
  })();
  return { text: () => text.length > keep ? text.slice(-keep) : text, done };
}
