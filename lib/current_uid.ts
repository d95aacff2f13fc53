let cached: number | undefined;

/**
 * Returns the user id of this process, the owner every FIFO we trust must have.
 *
 * With `--allow-sys=uid` it asks the kernel directly. Without it, it creates (and removes) an
 * empty private directory under `dir` and reads its owner, so the scoped `--allow-write` the
 * FIFOs need anyway is enough. The answer is cached for the life of the process.
 *
 * Permissions: `--allow-sys=uid`, or `--allow-read` and `--allow-write` for `dir`.
 *
 * @example Usage
 * ```ts ignore
 * import { currentUid } from "./current_uid.ts";
 * const uid = currentUid("/tmp");
 * ```
 *
 * @param dir A directory this process may write to, used only without `--allow-sys=uid`.
 * @returns The numeric user id.
 */
export function currentUid(dir: string): number {
  if (cached !== undefined) return cached;
  if (Deno.permissions.querySync({ name: "sys", kind: "uid" }).state === "granted") {
    const uid = Deno.uid();
    if (uid !== null) return cached = uid;
  }
  const probe = Deno.makeTempDirSync({ dir, prefix: ".uid-probe-" });
  try {
    return cached = Deno.statSync(probe).uid!;
  } finally {
    Deno.removeSync(probe);
  }
}
