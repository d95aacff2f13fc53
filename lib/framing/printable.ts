const strict = new TextDecoder("utf-8", { fatal: true });

function escapeControls(text: string): string {
  // deno-lint-ignore no-control-regex
  return text.replace(/[\x00-\x1f\x7f-\x9f\\]/g, (c) => {
    switch (c) {
      case "\n":
        return "\\n";
      case "\r":
        return "\\r";
      case "\t":
        return "\\t";
      case "\\":
        return "\\\\";
      default: {
        // C1 controls arrive as well-formed UTF-8: \u0085, since \x85 means a raw byte.
        const code = c.charCodeAt(0);
        return code < 0x80
          ? `\\x${code.toString(16).padStart(2, "0")}`
          : `\\u${code.toString(16).padStart(4, "0")}`;
      }
    }
  });
}

/**
 * Renders message bytes as one printable line: UTF-8 text as is, control characters (C0,
 * DEL, C1) and invalid UTF-8 bytes as backslash escapes (`\n`, `\x00`, `\u0085`, `\xff`),
 * so a message can never break or forge a log line.
 *
 * @example Usage
 * ```ts
 * import { printable } from "./printable.ts";
 * import assert from "node:assert/strict";
 * assert.deepEqual(printable(new Uint8Array([0x68, 0x69, 0x0a, 0xff])), "hi\\n\\xff");
 * ```
 *
 * @param bytes The message.
 * @returns A string without control characters.
 */
export function printable(bytes: Uint8Array): string {
  try {
    return escapeControls(strict.decode(bytes));
  } catch {
    let out = "";
    for (let i = 0; i < bytes.length;) {
      const end = validUtf8Run(bytes, i);
      if (end > i) {
        out += escapeControls(strict.decode(bytes.subarray(i, end)));
        i = end;
      } else {
        out += `\\x${bytes[i].toString(16).padStart(2, "0")}`;
        i++;
      }
    }
    return out;
  }
}

/** Returns the end of the longest run of well-formed UTF-8 sequences starting at `start`. */
function validUtf8Run(bytes: Uint8Array, start: number): number {
  let i = start;
  while (i < bytes.length) {
    const b = bytes[i];
    const size = b < 0x80
      ? 1
      : b >= 0xc2 && b <= 0xdf
      ? 2
      : b >= 0xe0 && b <= 0xef
      ? 3
      : b >= 0xf0 && b <= 0xf4
      ? 4
      : 0;
    if (size === 0 || i + size > bytes.length) break;
    let ok = true;
    for (let k = 1; k < size; k++) if ((bytes[i + k] & 0xc0) !== 0x80) ok = false;
    if (ok && size > 1) {
      try {
        strict.decode(bytes.subarray(i, i + size));
      } catch {
        ok = false;
      }
    }
    if (!ok) break;
    i += size;
  }
  return i;
}
