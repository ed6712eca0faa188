/**
 * Text that came out of a guest (an agent's error, a refusal, a command's
 * stderr), made fit for a message on the host: printable ASCII only, each
 * other byte a `?`, at most `max` characters. A guest is not trusted to
 * write to a terminal, or to make a message as long as it likes.
 */
export function guestText(data: Buffer | string, max = 200): string {
  const text = typeof data === "string" ? data.slice(0, max) : data.subarray(0, max).toString("latin1");
  return text.replace(/[^\x20-\x7e]/g, "?");
}
