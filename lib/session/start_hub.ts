/**
 * The one start-up of a session hub, shared by `serveEcho()` and `listen()` (internal).
 *
 * @module
 */
import type { FifoKeeper } from "../fifo/fifo_keeper.ts";
import type { SessionHub } from "./session_hub.ts";

/**
 * Sweeps what a crashed server's clients left, then makes the request FIFO `NAME.ctl` in
 * the keeper's private directory and starts `hub` reading it there before it gets its
 * public name: a client that sees the path always finds a reader; one that finds a live
 * server there by then backs off (`Deno.errors.AddrInUse`, from `FifoKeeper.add`). Call
 * {@linkcode assertStillOurs} once everything is published.
 *
 * Permissions: `--allow-read` and `--allow-write` for the directory, `--allow-run=mkfifo`.
 *
 * @example Usage
 * ```ts ignore
 * import { FifoKeeper } from "../fifo/fifo_keeper.ts";
 * import { assertStillOurs, startHub } from "./start_hub.ts";
 * const keeper = FifoKeeper.create("/tmp", "demo", uid);
 * await startHub(hub, keeper);
 * assertStillOurs(keeper);
 * ```
 *
 * @param hub The hub to start.
 * @param keeper Where its FIFO is made and published.
 * @returns The private path of the request FIFO.
 */
export async function startHub(hub: SessionHub, keeper: FifoKeeper): Promise<string> {
  hub.sweepLeftovers();
  return await keeper.add("ctl", (inside) => hub.start(inside));
}

/**
 * Throws `Deno.errors.AddrInUse` when a public name no longer names our FIFO: two servers
 * started at once both saw no live peer, and the later one replaced the earlier one's
 * FIFOs. The earlier one notices here and backs off.
 *
 * Permissions: `--allow-read` for the directory.
 *
 * @example Usage
 * ```ts ignore
 * import { assertStillOurs } from "./start_hub.ts";
 * assertStillOurs(keeper);
 * ```
 *
 * @param keeper The FIFOs just published.
 */
export function assertStillOurs(keeper: FifoKeeper): void {
  for (const { path } of keeper.check()) {
    throw new Deno.errors.AddrInUse(
      `Cannot serve on "${path}": another server started on it at the same time`,
    );
  }
}
