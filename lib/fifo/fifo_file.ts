/**
 * The one place that touches FIFO file descriptors: open, verify, read, write, close.
 *
 * Blocking opens go through `Deno.open`. `Deno.open` cannot pass `O_NONBLOCK`, so the few
 * opens that must never wait (probing for a live peer, waking a parked open, writing replies
 * to many session clients) use `node:fs`, whose numeric flags reach `open(2)` untouched.
 *
 * @module
 */
import {
  closeSync,
  constants,
  fstatSync,
  openSync as nodeOpenSync,
  readSync as nodeReadSync,
  writeSync as nodeWriteSync,
} from "node:fs";
import { dirname } from "node:path";
import { abortable, explainTimeout } from "./abortable.ts";
import { currentUid } from "./current_uid.ts";
import { sameFile } from "./same_file.ts";

/** How a FIFO is opened. `readwrite` never waits for a peer (Linux allows it on FIFOs). */
export type FifoAccess = "read" | "write" | "readwrite";

/** Options for {@linkcode FifoFile.open} and {@linkcode FifoFile.openSync}. */
export interface OpenFifoOptions {
  /**
   * Which end to open.
   *
   * @default {"read"}
   */
  access?: FifoAccess;
  /**
   * Aborts a pending open: the open is released by briefly opening the peer end, so no
   * thread stays parked. The promise rejects with the signal's reason.
   *
   * @default {undefined}
   */
  signal?: AbortSignal;
  /**
   * Milliseconds to wait for the peer before rejecting with `Deno.errors.TimedOut`.
   *
   * @default {undefined} (wait for ever)
   */
  timeout?: number;
  /**
   * Open with `O_NONBLOCK`: never wait for the peer. A write open with no reader then fails
   * with `Deno.errors.NotConnected`; reads return `0` when no data is ready and writes take
   * only what fits.
   *
   * @default {false}
   */
  nonblocking?: boolean;
  /**
   * The user id the FIFO must belong to.
   *
   * @default {the current user}
   */
  uid?: number;
  /**
   * Accept a FIFO that its group or other users may read but not write, such as the ones
   * the seed's server makes under umask 022 (mode 0644). Anything they may write is still
   * refused: they could inject messages.
   *
   * @default {false}
   */
  allowReadable?: boolean;
}

/**
 * Bytes a pipe write is guaranteed atomic up to (Linux `PIPE_BUF`): two writers' pieces of
 * at most this size never interleave.
 *
 * @example Usage
 * ```ts
 * import { PIPE_BUF } from "./fifo_file.ts";
 * const record = new Uint8Array(PIPE_BUF); // one write(2), never split
 * console.log(record.length); // 4096
 * ```
 */
export const PIPE_BUF = 4096;

const { O_RDONLY, O_WRONLY, O_RDWR, O_NONBLOCK } = constants;
const ACCESS_FLAGS = { read: O_RDONLY, write: O_WRONLY, readwrite: O_RDWR } as const;

/** Describes what sits at a path, for error messages. */
function describeKind(info: Deno.FileInfo): string {
  if (info.isSymlink) return "it is a symlink";
  if (info.isDirectory) return "it is a directory";
  if (info.isFile) return "it is a regular file";
  if (info.isFifo) return "it is a FIFO";
  return "it is not a FIFO";
}

/**
 * Explains why `info` is not a FIFO we may trust: it must be a FIFO, owned by `uid`, that
 * only its owner may open (or, with `allowReadable`, that only its owner may write).
 *
 * @param info What `lstat` or `fstat` returned.
 * @param uid The required owner.
 * @param allowReadable Accept a FIFO its group or other users may read but not write.
 * @returns The reason, or `undefined` when it is trustworthy.
 */
export function untrustedReason(
  info: Deno.FileInfo,
  uid: number,
  allowReadable = false,
): string | undefined {
  if (!info.isFifo) return describeKind(info);
  if (info.uid !== uid) return `it is owned by uid ${info.uid}, not ${uid}`;
  const mode = (info.mode ?? 0) & 0o777;
  const octal = mode.toString(8).padStart(4, "0");
  if (allowReadable && mode & 0o022) return `its mode ${octal} lets other users write to it`;
  if (!allowReadable && mode & 0o077) {
    return `its mode ${octal} lets other users in (expected 0600)`;
  }
}

/**
 * Throws unless `info` describes a FIFO we may trust (see {@linkcode untrustedReason}).
 *
 * @param path The path, for the message.
 * @param info What `lstat` or `fstat` returned.
 * @param uid The required owner.
 */
export function assertTrustedFifo(
  path: string,
  info: Deno.FileInfo,
  uid: number,
  allowReadable = false,
): void {
  const reason = untrustedReason(info, uid, allowReadable);
  if (reason) throw new Error(`Cannot use FIFO "${path}": ${reason}`);
}

function lstatOrExplain(path: string, verb: string): Deno.FileInfo {
  try {
    return Deno.lstatSync(path);
  } catch (cause) {
    if (cause instanceof Deno.errors.NotFound) {
      throw new Deno.errors.NotFound(`Cannot ${verb} FIFO "${path}": it does not exist`, { cause });
    }
    throw cause;
  }
}

/**
 * Checks the handle itself, then that the path still names it: whatever was swapped in
 * between our `lstat` and `open` is caught here, and never read or written.
 */
function verifyOpened(
  path: string,
  before: Deno.FileInfo,
  opened: Deno.FileInfo,
  uid: number,
  allowReadable = false,
) {
  assertTrustedFifo(path, opened, uid, allowReadable);
  const now = Deno.lstatSync(path);
  if (!sameFile(before, opened) || !sameFile(now, opened)) {
    throw new Error(`Cannot use FIFO "${path}": it was replaced while being opened`);
  }
}

function nodeStat(fd: number): Deno.FileInfo {
  const s = fstatSync(fd);
  return {
    isFile: s.isFile(),
    isDirectory: s.isDirectory(),
    isSymlink: s.isSymbolicLink(),
    isFifo: s.isFIFO(),
    isBlockDevice: s.isBlockDevice(),
    isCharDevice: s.isCharacterDevice(),
    isSocket: s.isSocket(),
    size: s.size,
    mtime: null,
    atime: null,
    birthtime: null,
    ctime: null,
    dev: s.dev,
    ino: s.ino,
    mode: s.mode,
    nlink: s.nlink,
    uid: s.uid,
    gid: s.gid,
    rdev: s.rdev,
    blksize: s.blksize,
    blocks: s.blocks,
  };
}

function isErrno(error: unknown, code: string): boolean {
  return (error as { code?: string })?.code === code;
}

/**
 * Opens `path` with `O_NONBLOCK` and returns the raw descriptor, or `null` when the open
 * would have had to wait (a write open with no reader: `ENXIO`). No verification.
 */
function openNonblockingFd(path: string, access: FifoAccess): number | null {
  try {
    return nodeOpenSync(path, ACCESS_FLAGS[access] | O_NONBLOCK);
  } catch (error) {
    if (isErrno(error, "ENXIO")) return null;
    throw error;
  }
}

/** Options for {@linkcode releasePendingOpen}. */
export interface ReleasePendingOpenOptions {
  /**
   * The user id the FIFO must belong to.
   *
   * @default {the current user}
   */
  uid?: number;
  /**
   * The FIFO the parked open started on (what `lstat` or `fstat` said of it): a path that
   * names anything else now is left alone, since opening it could not release that open.
   *
   * @default {undefined} (any FIFO we trust)
   */
  identity?: Deno.FileInfo;
}

/**
 * Releases an `open()` of `path` parked in the kernel waiting for its peer, by opening the
 * peer end without blocking and closing it again: the kernel wakes every waiter as soon as
 * the peer count changes.
 *
 * The wake-up open is checked like every {@linkcode FifoFile} open: `lstat` first (a
 * symlink, a non-FIFO or a FIFO that is not ours is never opened) and the handle after.
 * Deno resolves a symlink in the path itself before `open(2)`, so only `lstat` can tell.
 *
 * Permissions: `--allow-read` and `--allow-write` for `path`.
 *
 * @example Usage
 * ```ts ignore
 * import { FifoFile, releasePendingOpen } from "./fifo_file.ts";
 * const pending = FifoFile.open("/tmp/pipe.in", { access: "read" });
 * releasePendingOpen("/tmp/pipe.in", "read"); // `pending` now rejects or resolves at once
 * ```
 *
 * @param path The FIFO some thread is opening.
 * @param access The access the parked open asked for.
 * @param options The owner and identity the FIFO must have.
 */
export function releasePendingOpen(
  path: string,
  access: FifoAccess,
  options: ReleasePendingOpenOptions = {},
): void {
  if (access === "readwrite") return;
  try {
    const uid = options.uid ?? currentUid(dirname(path));
    const peer = access === "read" ? "write" : "read";
    const fd = openVerifiedNonblocking(path, peer, uid, options.identity);
    if (fd !== null) closeSync(fd);
  } catch {
    // Gone, replaced or untrusted: not opened, and nobody can be parked on it any more.
  }
}

/**
 * Opens `path` without blocking, the way {@linkcode FifoFile} opens: `lstat` must show a
 * FIFO we trust (and, given `identity`, that very FIFO), and the handle must be what
 * `lstat` saw. `null` when a write open finds no reader; throws for anything else, having
 * closed what it opened.
 */
function openVerifiedNonblocking(
  path: string,
  access: FifoAccess,
  uid: number,
  identity?: Deno.FileInfo,
): number | null {
  const before = lstatOrExplain(path, "open");
  assertTrustedFifo(path, before, uid);
  if (identity && !sameFile(before, identity)) {
    throw new Error(`Cannot use FIFO "${path}": it was replaced`);
  }
  const fd = openNonblockingFd(path, access);
  if (fd === null) return null;
  try {
    verifyOpened(path, before, nodeStat(fd), uid);
    return fd;
  } catch (error) {
    closeSync(fd);
    throw error;
  }
}

/**
 * Tells whether some process holds the read end of the FIFO at `path` open, without
 * waiting and without disturbing it. The path is not checked: callers check it first.
 *
 * @param path A FIFO.
 * @returns `true` when a reader is present.
 */
export function hasReader(path: string): boolean {
  const fd = openNonblockingFd(path, "write");
  if (fd === null) return false;
  closeSync(fd);
  return true;
}

/**
 * Tells whether the FIFO at `path` is one we trust (see {@linkcode untrustedReason}) with a
 * live reader: a running server. Missing or untrusted paths answer `false`, and are never
 * opened.
 *
 * @param path A FIFO's path.
 * @param uid The required owner.
 * @returns `true` when a server is reading it.
 */
export function isServed(path: string, uid: number): boolean {
  let before: Deno.FileInfo;
  try {
    before = Deno.lstatSync(path);
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return false;
    throw error;
  }
  if (untrustedReason(before, uid) !== undefined) return false;
  let fd: number | null;
  try {
    fd = openNonblockingFd(path, "write");
  } catch (error) {
    if (isErrno(error, "ENOENT")) return false;
    throw error;
  }
  if (fd === null) return false;
  try {
    const opened = nodeStat(fd);
    return sameFile(before, opened) && untrustedReason(opened, uid) === undefined;
  } finally {
    closeSync(fd);
  }
}

/**
 * An open end of a verified FIFO.
 *
 * Every open checks the path with `lstat` first (a symlink, regular file or directory is
 * refused without being opened for long) and the opened handle with `fstat` after (a FIFO,
 * owned by the expected user, mode `0600`, still the object at the path). A missing path is
 * never created.
 *
 * Permissions: `--allow-read` and `--allow-write` for the FIFO.
 *
 * @example Usage
 * ```ts
 * import { FifoFile } from "./fifo_file.ts";
 * import { makeFifo } from "./make_fifo.ts";
 * import assert from "node:assert/strict";
 * const dir = Deno.makeTempDirSync();
 * await makeFifo(`${dir}/pipe`);
 * // Each open waits for its peer: the reader's open is pending while the writer's runs.
 * const reading = FifoFile.open(`${dir}/pipe`, { access: "read", timeout: 5000 });
 * using writer = await FifoFile.open(`${dir}/pipe`, { access: "write", timeout: 5000 });
 * using reader = await reading;
 * await writer.writeAll(new TextEncoder().encode("hello\n"));
 * const buffer = new Uint8Array(64);
 * const n = await reader.read(buffer);
 * assert.equal(new TextDecoder().decode(buffer.subarray(0, n!)), "hello\n");
 * Deno.removeSync(dir, { recursive: true });
 * ```
 */
export class FifoFile implements Disposable {
  /** The path this end was opened from. */
  readonly path: string;
  /** What `fstat` said of the handle when it was opened: its identity, for removal. */
  readonly info: Deno.FileInfo;
  #file: Deno.FsFile | undefined;
  #fd: number;
  #closed = false;

  private constructor(
    path: string,
    info: Deno.FileInfo,
    file: Deno.FsFile | undefined,
    fd: number,
  ) {
    this.path = path;
    this.info = info;
    this.#file = file;
    this.#fd = fd;
  }

  /**
   * Opens a FIFO, waiting (on a runtime thread, not the event loop) for the peer.
   *
   * @param path The FIFO's path.
   * @param options How to open it.
   * @returns The verified open end.
   */
  static async open(path: string, options: OpenFifoOptions = {}): Promise<FifoFile> {
    const { access, uid, before, readable } = FifoFile.#prepare(path, options);
    if (options.nonblocking) {
      return FifoFile.#openNonblocking(path, access, before, uid, readable);
    }
    const signals = [options.signal, timeoutSignal(options.timeout)].filter((s) => s !== undefined);
    const signal = signals.length ? AbortSignal.any(signals) : undefined;
    signal?.throwIfAborted();
    const pending = Deno.open(path, { read: access !== "write", write: access !== "read" });
    if (!signal) return FifoFile.#adopt(path, await pending, before, uid, readable);
    const release = () => releasePendingOpen(path, access, { uid, identity: before });
    signal.addEventListener("abort", release, { once: true });
    let file: Deno.FsFile;
    try {
      file = await abortable(pending, signal);
    } catch (error) {
      pending.then((late) => late.close(), () => {});
      if (options.timeout === undefined) throw error;
      const peer = access === "read" ? "writer" : "reader";
      throw explainTimeout(error, options.timeout, `waiting for a ${peer} on FIFO "${path}"`);
    } finally {
      signal.removeEventListener("abort", release);
    }
    return FifoFile.#adopt(path, file, before, uid, readable);
  }

  /**
   * Opens a FIFO, blocking the calling thread until the peer arrives. Meant for workers;
   * release a parked call from another thread with {@linkcode releasePendingOpen}.
   *
   * @param path The FIFO's path.
   * @param options How to open it (`signal` and `timeout` are not supported here).
   * @returns The verified open end.
   */
  static openSync(path: string, options: OpenFifoOptions = {}): FifoFile {
    const { access, uid, before, readable } = FifoFile.#prepare(path, options);
    if (options.nonblocking) {
      return FifoFile.#openNonblocking(path, access, before, uid, readable);
    }
    const file = Deno.openSync(path, { read: access !== "write", write: access !== "read" });
    return FifoFile.#adopt(path, file, before, uid, readable);
  }

  /** What both opens check first: `lstat` must show a FIFO we trust. */
  static #prepare(path: string, options: OpenFifoOptions) {
    const uid = options.uid ?? currentUid(dirname(path));
    const before = lstatOrExplain(path, "open");
    const readable = options.allowReadable ?? false;
    assertTrustedFifo(path, before, uid, readable);
    return { access: options.access ?? "read", uid, before, readable };
  }

  static #adopt(
    path: string,
    file: Deno.FsFile,
    before: Deno.FileInfo,
    uid: number,
    readable: boolean,
  ): FifoFile {
    try {
      const info = file.statSync();
      verifyOpened(path, before, info, uid, readable);
      return new FifoFile(path, info, file, -1);
    } catch (error) {
      file.close();
      throw error;
    }
  }

  static #openNonblocking(
    path: string,
    access: FifoAccess,
    before: Deno.FileInfo,
    uid: number,
    readable: boolean,
  ): FifoFile {
    const fd = openNonblockingFd(path, access);
    if (fd === null) {
      throw new Deno.errors.NotConnected(`Cannot open FIFO "${path}" for writing: no reader`);
    }
    try {
      const info = nodeStat(fd);
      verifyOpened(path, before, info, uid, readable);
      return new FifoFile(path, info, undefined, fd);
    } catch (error) {
      closeSync(fd);
      throw error;
    }
  }

  /** Whether {@linkcode FifoFile.close} was called. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Reads into `buffer`.
   *
   * @returns The byte count, or `null` at end of file (no writer left).
   */
  read(buffer: Uint8Array): Promise<number | null> {
    if (this.#file) return this.#file.read(buffer);
    return Promise.resolve(this.readSync(buffer));
  }

  /**
   * Reads into `buffer`, blocking the thread (or, when opened non-blocking, returning `0`
   * when nothing is ready).
   *
   * @returns The byte count, or `null` at end of file (no writer left).
   */
  readSync(buffer: Uint8Array): number | null {
    if (this.#file) return this.#file.readSync(buffer);
    try {
      const n = nodeReadSync(this.#fd, buffer);
      return n === 0 ? null : n;
    } catch (error) {
      if (isErrno(error, "EAGAIN")) return 0;
      throw error;
    }
  }

  /**
   * Writes all of `bytes`, looping over short writes.
   *
   * @param bytes What to write.
   * @param progress Told the bytes written so far after each short write: what reached
   *   the pipe before an error.
   */
  async writeAll(bytes: Uint8Array, progress?: (written: number) => void): Promise<void> {
    if (!this.#file) return this.writeAllSync(bytes);
    try {
      for (let done = 0; done < bytes.length;) {
        done += await this.#file.write(bytes.subarray(done));
        progress?.(done);
      }
    } catch (error) {
      throw this.#explain(error);
    }
  }

  /** Writes all of `bytes`, blocking the thread until the pipe has taken them. */
  writeAllSync(bytes: Uint8Array): void {
    if (!this.#file) {
      const n = this.tryWrite(bytes);
      if (n < bytes.length) throw new Deno.errors.WouldBlock(`FIFO "${this.path}" is full`);
      return;
    }
    try {
      for (let done = 0; done < bytes.length;) {
        done += this.#file.writeSync(bytes.subarray(done));
      }
    } catch (error) {
      throw this.#explain(error);
    }
  }

  /** The runtime's "Broken pipe (os error 32)", said as what it means for a FIFO. */
  #explain(error: unknown): unknown {
    if (!(error instanceof Deno.errors.BrokenPipe)) return error;
    return new Deno.errors.BrokenPipe(`Cannot write FIFO "${this.path}": no reader`, {
      cause: error,
    });
  }

  /**
   * Writes as much of `bytes` as the pipe takes now, in atomic pieces of at most
   * {@linkcode PIPE_BUF} bytes, and never waits. Only for ends opened non-blocking.
   * Throws `BrokenPipe` when there is no reader and nothing was written.
   *
   * @returns How many bytes were taken.
   */
  tryWrite(bytes: Uint8Array): number {
    if (this.#file) throw new TypeError(`FIFO "${this.path}" was not opened non-blocking`);
    let done = 0;
    // node's writeSync retries short writes itself and drops the count on EAGAIN; pieces
    // of at most PIPE_BUF are all-or-nothing, so the count stays exact.
    while (done < bytes.length) {
      const end = Math.min(done + PIPE_BUF, bytes.length);
      try {
        done += nodeWriteSync(this.#fd, bytes, done, end - done);
      } catch (error) {
        if (isErrno(error, "EAGAIN")) break;
        // What went in before the reader left was written: say so, and fail next time.
        if (isErrno(error, "EPIPE") && done) break;
        if (isErrno(error, "EPIPE")) {
          throw new Deno.errors.BrokenPipe(`Cannot write FIFO "${this.path}": no reader`, {
            cause: error,
          });
        }
        throw error;
      }
    }
    return done;
  }

  /** Closes this end. Closing twice is harmless. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#file) this.#file.close();
    else closeSync(this.#fd);
  }

  /** Closes this end (for `using`). */
  [Symbol.dispose](): void {
    this.close();
  }
}

function timeoutSignal(ms: number | undefined): AbortSignal | undefined {
  return ms === undefined || ms === Infinity ? undefined : AbortSignal.timeout(ms);
}
