import { sameFile } from "./same_file.ts";

let cached: number | undefined;

/**
 * Returns the user id of this process, the owner every FIFO we trust must have.
 *
 * With `--allow-sys=uid` it asks the kernel directly. Without it, it creates a new empty
 * file under `dir` and reads the owner of the open handle, so the scoped `--allow-write`
 * the FIFOs need anyway is enough. The answer is cached for the life of the process.
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
  const probe = `${dir}/.uid-probe-${crypto.randomUUID()}`;
  // `createNew` is O_CREAT|O_EXCL: it never follows a symlink planted at the name, so the
  // file is one this process just made, and the handle, not the path, says who made it.
  // (A probe read back by path once let a swapped-in symlink name another user's uid.)
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(probe, { createNew: true, write: true, mode: 0o600 });
  } catch (cause) {
    throw new Error(`Cannot learn this process's uid in "${dir}": ${(cause as Error).message}`, {
      cause,
    });
  }
  try {
    const info = file.statSync();
    removeIfSame(probe, info);
    return cached = info.uid!;
  } finally {
    file.close();
  }
}

/** Removes our probe, unless something else has taken its name meanwhile. */
function removeIfSame(path: string, info: Deno.FileInfo): void {
  try {
    const now = Deno.lstatSync(path);
    if (sameFile(now, info)) Deno.removeSync(path);
  } catch {
    // Gone already: nothing of ours is left.
  }
}
