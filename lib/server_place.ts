import { resolve } from "node:path";

/** Where a server's FIFOs live: `DIR/NAME.*`. */
export interface ServerPlace {
  /** The absolute directory. */
  dir: string;
  /** The base name. */
  name: string;
}

const NAME_PATTERN = /^[A-Za-z0-9._-]+$/;

/**
 * Resolves and checks where a server's FIFOs live: the name must be a plain file name (no
 * `/`, not `.` or `..`), so `DIR/NAME.*` can only name files in `DIR`.
 *
 * @example Usage
 * ```ts
 * import { serverPlace } from "./server_place.ts";
 * console.log(serverPlace({ dir: "/tmp", name: "pipe" })); // { dir: "/tmp", name: "pipe" }
 * ```
 *
 * @param options `dir` (default `/tmp`) and `name` (default `pipe`).
 * @returns The absolute directory and the name.
 * @throws {TypeError} For a name that is not a plain file name.
 */
export function serverPlace(options: { dir?: string; name?: string }): ServerPlace {
  const name = options.name ?? "pipe";
  if (!NAME_PATTERN.test(name) || name === "." || name === "..") {
    throw new TypeError(`Invalid name "${name}": use letters, digits, ".", "_" and "-"`);
  }
  return { dir: resolve(options.dir ?? "/tmp"), name };
}

/**
 * Refuses a server directory that is a symlink or not a directory, before anything is
 * created in it: FIFOs made through a symlinked `/tmp/x` land wherever it points.
 *
 * Permissions: `--allow-read` for `dir`.
 *
 * @example Usage
 * ```ts ignore
 * import { checkServerDir } from "./server_place.ts";
 * checkServerDir("/tmp");
 * ```
 *
 * @param dir The directory.
 */
export function checkServerDir(dir: string): void {
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot serve in "${dir}": it does not exist`, { cause });
    }
    throw cause;
  }
  if (info.isSymlink) throw new Error(`Cannot serve in "${dir}": it is a symlink`);
  if (!info.isDirectory) throw new Error(`Cannot serve in "${dir}": it is not a directory`);
}
