/// <reference no-default-lib="true" />
/// <reference lib="deno.worker" />
/**
 * The plain pair's input thread: runs {@linkcode runPlainInput} on real FIFOs with
 * blocking calls. Internal; bundled into `plain_worker_bundle.ts` (`deno task bundle`) and
 * started by `PlainEngine` from a `blob:` URL, so it needs no read access to `lib/`.
 *
 * @module
 */
import { FifoFile } from "../fifo/fifo_file.ts";
import { type InputIo, runPlainInput, STALL_MS } from "./plain_input.ts";
import { type InputEvent, type PlainConfig, Slot } from "./plain_protocol.ts";
import { writeStdoutSync } from "../framing/write_stdout.ts";
import { ReplyRing } from "./reply_ring.ts";

function post(event: InputEvent): void {
  self.postMessage(event); // replies go through the ring, never here
}

self.onmessage = (message: MessageEvent<PlainConfig>) => {
  const config = message.data;
  const slots = new Int32Array(config.shared);
  const { uid } = config;
  const ring = new ReplyRing(config.ring, config.shared);
  const stopping = () => Atomics.load(slots, Slot.STOP) !== 0;
  const io: InputIo = {
    openInput: () => FifoFile.openSync(config.input, { access: "read", uid }),
    openOutputNow() {
      try {
        return FifoFile.openSync(config.output, { access: "write", nonblocking: true, uid });
      } catch (error) {
        if (error instanceof Deno.errors.NotConnected) return null;
        throw error;
      }
    },
    waitForHeld: (held, ms) => void Atomics.wait(slots, Slot.HELD, held, ms),
    waitForOutput(client, ms) {
      const holding = Atomics.load(slots, Slot.SERVED);
      if (holding !== client) Atomics.wait(slots, Slot.SERVED, holding, ms);
    },
    waitForEnded(client, ms) {
      const ended = Atomics.load(slots, Slot.ENDED);
      if (ended < client) Atomics.wait(slots, Slot.ENDED, ended, ms);
    },
    post,
    hold(client, bytes) {
      const { put, wake } = ring.hold(client, bytes, STALL_MS, stopping);
      if (wake) post({ type: "ring" });
      return put;
    },
    log: writeStdoutSync,
    nap: (ms) => void Atomics.wait(slots, Slot.STOP, 0, ms),
  };
  try {
    runPlainInput(config, io);
    post({ type: "stopped" });
  } catch (error) {
    post({ type: "fatal", message: (error as Error)?.message ?? String(error) });
  }
};
