/** Guest text in host messages: printable ASCII, a `?` for every other byte, cut at the bound. */
import { expect, it } from "vitest";
import { guestText } from "../../src/guest/guest-text.js";

it("keeps printable ASCII and marks every other byte, from bytes or text", () => {
  expect(guestText(Buffer.from("ok\x1b[2J\n\xff", "latin1"))).toBe("ok?[2J??");
  expect(guestText("mv: can't rename\u00e9\r")).toBe("mv: can't rename??");
});

it("cuts at the bound, 200 by default", () => {
  expect(guestText(Buffer.alloc(1000, 0x41))).toHaveLength(200);
  expect(guestText("x".repeat(50), 10)).toBe("x".repeat(10));
});
