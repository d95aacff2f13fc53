/**
 * The one start-up of a session hub, shared by `serveEcho()` and `listen()` (internal).
 *
 * @module
 */
import { isServed } from "./fifo_file.ts";
import { makeFifo } from "./make_fifo.ts";
import type { SessionHub } from "./session_hub.ts";

/**
 * Sweeps what a crashed server's clients left, then makes the request FIFO `path` and
 * starts `hub` reading it before it gets its public name: a client that sees the path
 * always finds a reader; one that finds a live server there by then backs off
 * (`Deno.errors.AddrInUse`). Call {@linkcode assertStillOurs} once everything is published.
 *
 * @returns What was created at `path`, for removing it later (and only it).
 */
export async function startHub(hub: SessionHub, path: string, uid: number): Promise<Deno.FileInfo> {
  hub.sweepLeftovers();
  return await makeFifo(path, {
    replace: true,
    uid,
    beforePublish: async (staging) => {
      await hub.start(staging);
      // Checked again just before the rename: a server that published while we made our
      // FIFO (mkfifo takes milliseconds) wins, and we back off instead of replacing its
      // live FIFO. Only two renames microseconds apart can both pass this; then
      // assertStillOurs() catches the earlier one in most interleavings.
      if (isServed(path, uid)) {
        throw new Deno.errors.AddrInUse(
          `Cannot serve on "${path}": another server started on it at the same time`,
        );
      }
    },
  });
}

/**
 * Two servers started at once both saw no live peer, and the later one replaced the
 * earlier one's FIFOs: the earlier one notices here and backs off.
 *
 * @throws {Deno.errors.AddrInUse} When one of `created` is no longer what we made.
 */
export function assertStillOurs(created: [string, Deno.FileInfo][]): void {
  for (const [path, info] of created) {
    let now: Deno.FileInfo | undefined;
    try {
      now = Deno.lstatSync(path);
    } catch { /* removed by the other server */ }
    if (now?.ino !== info.ino || now?.dev !== info.dev) {
      throw new Deno.errors.AddrInUse(
        `Cannot serve on "${path}": another server started on it at the same time`,
      );
    }
  }
}
