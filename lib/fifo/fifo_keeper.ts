/**
 * A server's FIFOs, kept in a private directory and published by hard links. Internal.
 *
 * Each FIFO is made in `DIR/.NAME.keep-XXXXXX` (mode 0700, ours) and linked to its public
 * name, `DIR/NAME.in` say. The server opens and wakes its FIFOs only through the private
 * links, which nobody else can rename, remove or replace: a public name that is moved,
 * removed or swapped for a symlink never changes what the server opens, and its stop path
 * never depends on a public path. A public name that vanishes is linked again to the same
 * FIFO, so clients that still hold it and new ones meet in one pipe.
 *
 * @module
 */
import { makeFifo, removeFifo } from "./make_fifo.ts";
import { isServed, untrustedReason } from "./fifo_file.ts";
import { sameFile } from "./same_file.ts";

/** What happened to a public name, as {@linkcode FifoKeeper.check} finds it. */
export interface PublicNameProblem {
  /** The public path. */
  path: string;
  /** `missing`: nothing is there; `replaced`: something else is. */
  problem: "missing" | "replaced";
}

/** A directory owned by `uid` that nobody else may enter. */
function isPrivateDir(info: Deno.FileInfo, uid: number): boolean {
  return info.isDirectory && info.uid === uid && ((info.mode ?? 0) & 0o077) === 0;
}

function lstatOrNull(path: string): Deno.FileInfo | null {
  try {
    return Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return null;
    throw error;
  }
}

/**
 * Makes, publishes, watches and removes a server's FIFOs (see the module doc).
 *
 * Permissions: `--allow-read` and `--allow-write` for `dir`, `--allow-run=mkfifo`.
 *
 * @example Usage
 * ```ts
 * import { FifoKeeper } from "./fifo_keeper.ts";
 * import assert from "node:assert/strict";
 * const dir = Deno.makeTempDirSync();
 * const keeper = FifoKeeper.create(dir, "demo", Deno.statSync(dir).uid!);
 * const inside = await keeper.add("in");
 * assert.equal(Deno.lstatSync(`${dir}/demo.in`).ino, Deno.lstatSync(inside).ino);
 * keeper.remove();
 * assert.deepEqual([...Deno.readDirSync(dir)], []);
 * Deno.removeSync(dir);
 * ```
 */
export class FifoKeeper {
  /** The directory of the public names. */
  readonly dir: string;
  /** The public names' base. */
  readonly name: string;
  /** The private directory. */
  readonly home: string;
  #uid: number;
  #homeInfo: Deno.FileInfo;
  #fifos = new Map<string, Deno.FileInfo>();

  private constructor(dir: string, name: string, uid: number, home: string, info: Deno.FileInfo) {
    this.dir = dir;
    this.name = name;
    this.#uid = uid;
    this.home = home;
    this.#homeInfo = info;
  }

  /**
   * Makes the private directory.
   *
   * @param dir Where the public names go (checked by the caller).
   * @param name Their base name.
   * @param uid Our user id.
   * @returns The keeper, with no FIFO yet.
   */
  static create(dir: string, name: string, uid: number): FifoKeeper {
    const home = Deno.makeTempDirSync({ dir, prefix: `.${name}.keep-` });
    const info = Deno.lstatSync(home);
    // makeTempDir makes 0700 with O_EXCL semantics; still, trust only what we checked.
    if (!isPrivateDir(info, uid)) {
      throw new Error(`Cannot use directory "${home}": it is not the private directory we made`);
    }
    return new FifoKeeper(dir, name, uid, home, info);
  }

  /** The public path of `DIR/NAME.suffix`. */
  publicPath(suffix: string): string {
    return `${this.dir}/${this.name}.${suffix}`;
  }

  /** The private path of the FIFO published as `NAME.suffix`. */
  privatePath(suffix: string): string {
    return `${this.home}/${suffix}`;
  }

  /**
   * Makes the FIFO `NAME.suffix` (mode 0600) in the private directory, lets `beforePublish`
   * open it there, then links it to its public name, replacing a stale FIFO of ours (the
   * caller has checked that no live server uses it) and refusing anything else.
   *
   * @param suffix `in`, `out` or `ctl`.
   * @param beforePublish Runs with the private path before the public name exists.
   * @returns The private path.
   */
  async add(
    suffix: string,
    beforePublish?: (privatePath: string) => void | Promise<void>,
  ): Promise<string> {
    const inside = this.privatePath(suffix);
    const info = await makeFifo(inside, { uid: this.#uid });
    this.#fifos.set(suffix, info);
    await beforePublish?.(inside);
    const path = this.publicPath(suffix);
    const existing = lstatOrNull(path);
    if (existing) {
      const reason = untrustedReason(existing, this.#uid);
      if (reason) {
        throw new Deno.errors.AlreadyExists(
          `Cannot create FIFO "${path}": ${reason}; remove it yourself if it is not needed`,
        );
      }
      // Checked again just before the link: a server that published while we made our
      // FIFO (mkfifo takes milliseconds) wins, and we back off instead of replacing it.
      if (isServed(path, this.#uid)) {
        throw new Deno.errors.AddrInUse(
          `Cannot serve on "${path}": another server started on it at the same time`,
        );
      }
      // A stale FIFO of ours: replace it in one step, so the name is never missing.
      const staging = `${this.home}/${suffix}.publish`;
      Deno.linkSync(inside, staging);
      Deno.renameSync(staging, path);
    } else {
      Deno.linkSync(inside, path);
    }
    return inside;
  }

  /**
   * Compares every public name with the FIFO it should name.
   *
   * @returns The names that are missing or name something else.
   */
  check(): PublicNameProblem[] {
    const problems: PublicNameProblem[] = [];
    for (const [suffix, info] of this.#fifos) {
      const path = this.publicPath(suffix);
      const now = lstatOrNull(path);
      if (!now) problems.push({ path, problem: "missing" });
      else if (!sameFile(now, info)) problems.push({ path, problem: "replaced" });
    }
    return problems;
  }

  /**
   * Links a missing public name to its FIFO again. `link(2)` never replaces what is there,
   * so a name that someone took meanwhile is left to them.
   *
   * @param path A public path that {@linkcode FifoKeeper.check} found missing.
   * @returns Whether the name is ours again.
   */
  restore(path: string): boolean {
    for (const suffix of this.#fifos.keys()) {
      if (this.publicPath(suffix) !== path) continue;
      try {
        Deno.linkSync(this.privatePath(suffix), path);
        return true;
      } catch (error) {
        if (error instanceof Deno.errors.AlreadyExists) return false;
        throw error;
      }
    }
    return false;
  }

  /** Removes the public names that still name our FIFOs, then the private directory. */
  remove(): void {
    for (const [suffix, info] of this.#fifos) {
      removeFifo(this.publicPath(suffix), info);
      removeFifo(this.privatePath(suffix), info);
      removeFifo(`${this.privatePath(suffix)}.publish`, info);
    }
    this.#fifos.clear();
    const now = lstatOrNull(this.home);
    if (now && sameFile(now, this.#homeInfo)) {
      try {
        Deno.removeSync(this.home);
      } catch {
        // Someone with our uid put something in it: leave it rather than delete theirs.
      }
    }
  }

  /**
   * Removes what a dead server of ours left: the private directories whose FIFOs the
   * public names still link to. Call only after checking that no live server uses them.
   *
   * @param dir The public names' directory.
   * @param name Their base name.
   * @param uid Our user id.
   * @returns How many private directories were removed.
   */
  static sweep(dir: string, name: string, uid: number): number {
    const published = new Set<string>();
    for (const suffix of ["in", "out", "ctl"]) {
      const info = lstatOrNull(`${dir}/${name}.${suffix}`);
      if (info?.isFifo && info.uid === uid) published.add(`${info.dev}:${info.ino}`);
    }
    let removed = 0;
    if (!published.size) return removed;
    const prefix = `.${name}.keep-`;
    for (const entry of Deno.readDirSync(dir)) {
      if (!entry.name.startsWith(prefix)) continue;
      const home = `${dir}/${entry.name}`;
      const info = lstatOrNull(home);
      if (!info || !isPrivateDir(info, uid)) continue;
      const fifos: [string, Deno.FileInfo | null][] = [...Deno.readDirSync(home)]
        .map((e) => [`${home}/${e.name}`, lstatOrNull(`${home}/${e.name}`)]);
      const ours = fifos.every(([, f]) => f?.isFifo);
      const linked = fifos.some(([, f]) => f && published.has(`${f.dev}:${f.ino}`));
      if (!ours || !linked) continue;
      for (const [path, f] of fifos) removeFifo(path, f!);
      try {
        Deno.removeSync(home);
        removed++;
      } catch { /* not empty after all: leave it */ }
    }
    return removed;
  }
}
