import { dirname, resolve } from "node:path";
import { currentUid } from "./current_uid.ts";

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

const STICKY = 0o1000;

/** What is wrong with one directory of the chain, owners aside; `undefined` when nothing. */
function looseReason(info: Deno.FileInfo): string | undefined {
  if (info.isSymlink) return "is a symlink";
  if (!info.isDirectory) return "is not a directory";
  const mode = info.mode ?? 0;
  if (mode & STICKY) return undefined;
  if (mode & 0o002) return "is writable by others without the sticky bit";
  if (mode & 0o020) return "is writable by its group without the sticky bit";
}

/** Whether this process may look at `path` (asking never prompts). */
function mayRead(path: string): boolean {
  return Deno.permissions.querySync({ name: "read", path }).state === "granted";
}

/**
 * The directories whose owners and modes decide who can rearrange `dir`: `dir` itself,
 * then every ancestor up to `/`. An ancestor that is a symlink (`/var/run` to `/run`) is
 * examined where it leads too, from there up to `/`: the link's own directory decides who
 * can repoint it, its target's chain who can rearrange what it names.
 */
function chainOf(dir: string, info: Deno.FileInfo): [string, Deno.FileInfo][] {
  const chain: [string, Deno.FileInfo][] = [[dir, info]];
  const climb = (from: string) => {
    for (let path = from; path !== dirname(path);) {
      path = dirname(path);
      // Ancestors outside --allow-read cannot be examined: they are the part of the tree
      // the user did not let this process see (`/` under --allow-read=/tmp).
      if (!mayRead(path)) continue;
      const parent = Deno.lstatSync(path);
      if (parent.isSymlink) {
        const real = Deno.realPathSync(path);
        chain.push([real, Deno.lstatSync(real)]);
        climb(real);
      } else {
        chain.push([path, parent]);
      }
    }
  };
  climb(dir);
  return chain;
}

/**
 * Refuses a directory that another user could rearrange, before anything is created or
 * opened in it: the rule for `--dir` of the server and the client, `listen()` and
 * `connect()`.
 *
 * `dir` must be a real directory (never a symlink: FIFOs made through one land wherever it
 * points) and neither it nor any ancestor up to `/` may be writable by its group or by
 * others unless it has the sticky bit, or owned by anyone but this user or root: the checks
 * OpenSSH's StrictModes makes, with `/tmp`'s sticky bit allowed. In such a directory no
 * other user can rename, remove or replace what we create, so paths we checked keep
 * naming what we checked. Ancestors outside `--allow-read` are not examined.
 *
 * Permissions: `--allow-read` for `dir` (and, to examine them, its ancestors);
 * `--allow-write` for `dir` or a root-owned sticky ancestor (`/tmp`) when a non-root owner
 * makes the uid matter and `--allow-sys=uid` is not granted.
 *
 * @example Usage
 * ```ts ignore
 * import { checkServerDir } from "./server_place.ts";
 * checkServerDir("/tmp"); // root's, mode 1777: fine
 * checkServerDir("/srv/shared"); // mode 0777: throws "...writable by others without the sticky bit"
 * ```
 *
 * @param dir The absolute directory.
 * @throws {Error} Naming the directory (or its offending ancestor) and what is wrong.
 */
export function checkServerDir(dir: string): void {
  const refuse = (path: string, reason: string, cause?: unknown) => {
    const which = path === dir ? "it" : `its ancestor "${path}"`;
    return new Error(`Cannot use directory "${dir}": ${which} ${reason}`, { cause });
  };
  let info: Deno.FileInfo;
  try {
    info = Deno.lstatSync(dir);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot use directory "${dir}": it does not exist`, {
        cause,
      });
    }
    throw cause;
  }
  // The directory itself first: a symlink is refused before anything else is looked at.
  const own = looseReason(info);
  if (own) throw refuse(dir, own);
  const chain = chainOf(dir, info);
  for (const [path, entry] of chain) {
    const reason = looseReason(entry);
    if (reason) throw refuse(path, reason);
  }
  // Owners last: learning our uid may need a probe file, made only once the modes say no
  // other user can rearrange where it goes. It goes to a shared place such as /tmp (root's,
  // sticky) when the chain has one we may write, so that a directory we are about to
  // refuse, another user's, is never written to; else to `dir` itself.
  const foreign = chain.filter(([, entry]) => entry.uid !== 0);
  if (!foreign.length) return;
  const shared = chain.find(([path, entry]) =>
    entry.uid === 0 && ((entry.mode ?? 0) & STICKY) !== 0 &&
    Deno.permissions.querySync({ name: "write", path }).state === "granted"
  );
  const probeDir = shared?.[0] ?? dir;
  let uid: number;
  try {
    uid = currentUid(probeDir);
  } catch (cause) {
    throw refuse(probeDir, "does not let this process create files in it", cause);
  }
  for (const [path, entry] of foreign) {
    if (entry.uid !== uid) {
      throw refuse(path, `is owned by uid ${entry.uid}, not by this user (uid ${uid}) or root`);
    }
  }
}
