// TEMPORARY local placeholder until the identity branch is merged. NOT TO BE COMMITTED.
import type { GuestNetwork } from "../network/guest.js";
export function identityFor(hostname: string, guest: GuestNetwork): unknown { return { hostname, guest }; }
export async function sendIdentity(_s: string, _i: unknown, _o: { budgetMs: number }): Promise<void> {}
