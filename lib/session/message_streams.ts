/**
 * The Web Streams face of a connection, for {@linkcode FifoConn} and
 * {@linkcode FifoServerConn}: one message per chunk, either way.
 *
 * @module
 */

/**
 * A stream of the messages `receive` returns, ending at its `null`; cancelling it calls
 * `cancel`. Pulled one message at a time (no read-ahead).
 */
export function messageReadable(
  receive: () => Promise<Uint8Array | null>,
  cancel: () => void,
): ReadableStream<Uint8Array> {
  return new ReadableStream<Uint8Array>({
    pull: async (controller) => {
      const message = await receive();
      if (message === null) controller.close();
      else controller.enqueue(message);
    },
    cancel,
  }, { highWaterMark: 0 });
}

/** A stream whose every chunk is a message for `send`; closing or aborting it calls `end`. */
export function messageWritable(
  send: (message: Uint8Array) => Promise<void>,
  end?: () => void,
): WritableStream<Uint8Array> {
  return new WritableStream<Uint8Array>({ write: send, close: end, abort: end });
}
