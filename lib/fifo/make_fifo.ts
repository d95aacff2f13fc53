import { basename, dirname } from "node:path";
import { assertTrustedFifo, untrustedReason } from "./fifo_file.ts";
import { currentUid } from "./current_uid.ts";

/** Options for {@linkcode makeFifo}. */
export interface MakeFifoOptions {
  /**
   * Replace a FIFO already at the path if it is ours (owned by us, mode `0600`). Anything
   * else at the path (a regular file, a directory, a symlink, a foreign FIFO) is always
   * refused and left untouched. Callers check first that no live peer uses the old FIFO.
   *
   * @default {false}
   */
  replace?: boolean;
  /**
   * The user id the FIFO must end up owned by.
   *
   * @default {the current user}
   */
  uid?: number;
  /**
   * Runs on the new FIFO under a temporary name in the same directory, before it is
   * renamed to `path`: open it here and peers never find the path without its owner's
   * end open (a server that is "there" is a server that is reading).
   *
   * @default {undefined}
   */
  beforePublish?: (stagingPath: string) => void | Promise<void>;
}

/**
 * Creates a FIFO of mode `0600` with the `mkfifo` command and verifies what was created.
 *
 * Deno has no `mkfifo` API, hence the subprocess. The FIFO is made under a fresh temporary
 * name (`mkfifo` refuses to follow or overwrite anything there), verified, then renamed
 * into place: a stale FIFO of ours is replaced atomically, and the path never names a
 * half-made FIFO.
 *
 * Permissions: `--allow-run=mkfifo`, `--allow-read` and `--allow-write` for the path.
 *
 * @example Usage
 * ```ts
 * import { makeFifo, removeFifo } from "./make_fifo.ts";
 * import assert from "node:assert/strict";
 * const dir = Deno.makeTempDirSync();
 * const created = await makeFifo(`${dir}/pipe.in`, { replace: true });
 * assert.equal(created.isFifo, true);
 * assert.equal(created.mode! & 0o777, 0o600);
 * removeFifo(`${dir}/pipe.in`, created);
 * Deno.removeSync(dir);
 * ```
 *
 * @param path Where to create the FIFO.
 * @param options What to do with an existing FIFO.
 * @returns The created FIFO's file info, the identity {@linkcode removeFifo} checks.
 */
export async function makeFifo(
  path: string,
  options: MakeFifoOptions = {},
): Promise<Deno.FileInfo> {
  const uid = options.uid ?? currentUid(dirname(path));
  let existing: Deno.FileInfo | undefined;
  try {
    existing = Deno.lstatSync(path);
  } catch (error) {
    if (!(error instanceof Deno.errors.NotFound)) throw error;
  }
  if (existing) {
    const reason = untrustedReason(existing, uid);
    if (reason) {
      throw new Deno.errors.AlreadyExists(
        `Cannot create FIFO "${path}": ${reason}; remove it yourself if it is not needed`,
      );
    }
    if (!options.replace) {
      throw new Deno.errors.AlreadyExists(`Cannot create FIFO "${path}": it already exists`);
    }
  }
  const staging = `${dirname(path)}/.${basename(path)}.${crypto.randomUUID().slice(0, 8)}`;
  const { code, stderr } = await new Deno.Command("mkfifo", {
    args: ["-m", "0600", "--", staging],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (code !== 0) {
    const reason = new TextDecoder().decode(stderr).trim();
    throw new Error(`Cannot create FIFO "${path}": mkfifo exited with code ${code}: ${reason}`);
  }
  const created = Deno.lstatSync(staging);
  try {
    assertTrustedFifo(staging, created, uid);
    await options.beforePublish?.(staging);
    Deno.renameSync(staging, path);
  } catch (error) {
    removeFifo(staging, created);
    throw error;
  }
  return created;
}

/**
 * Removes the FIFO at `path` if it is still the one described by `info`; anything that has
 * replaced it since is left alone.
 *
 * Permissions: `--allow-read` and `--allow-write` for the path.
 *
 * @example Usage
 * ```ts
 * import { makeFifo, removeFifo } from "./make_fifo.ts";
 * import assert from "node:assert/strict";
 * const dir = Deno.makeTempDirSync();
 * const created = await makeFifo(`${dir}/pipe.in`);
 * assert.equal(removeFifo(`${dir}/pipe.in`, created), true);
 * assert.equal(removeFifo(`${dir}/pipe.in`, created), false); // already gone
 * Deno.removeSync(dir);
 * ```
 *
 * @param path The FIFO's path.
 * @param info The identity it had when created.
 * @returns Whether it was removed.
 */
export function removeFifo(path: string, info: Deno.FileInfo): boolean {
  try {
    const now = Deno.lstatSync(path);
    if (now.dev !== info.dev || now.ino !== info.ino) return false;
    Deno.removeSync(path);
    return true;
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
}
