/**
 * Authentication against one registry, the way Docker does it: start
 * anonymous, and answer a 401's `WWW-Authenticate` challenge. A Basic
 * challenge gets the user's credentials; a Bearer challenge sends us to the
 * token service named in `realm` (with the credentials, if any) for a token
 * valid for one scope (`repository:<repo>:pull`). Tokens are cached per
 * scope until shortly before they expire, and once a registry has said how
 * it wants to be spoken to, later requests carry the answer up front instead
 * of paying for a 401 each.
 */
import { SkiffError } from "../../errors.js";
import { pickChallenge, parseChallenges, type Challenge } from "./challenge.js";
import { lookupCredentials, type CredentialOptions, type Credentials } from "./credentials.js";
import type { RegistryResponse } from "./http-fetch.js";

/** A token service's answer, read whole (the transport ends the request's timers once it has the body). */
export interface TokenAnswer {
  status: number;
  ok: boolean;
  text: string;
}

/** How a request to the token service is made (the client's transport, with its timeouts). */
export type TokenFetch = (url: URL, headers: Record<string, string>) => Promise<TokenAnswer>;

export interface AuthenticatorOptions extends CredentialOptions {
  registry: string;
  /** Explicit credentials (login); null for anonymous; undefined to look them up. */
  credentials?: Credentials | null;
  fetchToken: TokenFetch;
}

interface CachedToken {
  token: string;
  expiresAt: number;
}

/** Tokens are used until this long before they expire, so one does not lapse in flight. */
const expiryMarginMs = 10_000;
/** The distribution token spec: a token without expires_in lives 60 s. */
const defaultTokenLifetimeS = 60;

export class Authenticator {
  readonly registry: string;
  readonly #opts: AuthenticatorOptions;
  #credentials: Promise<Credentials | undefined> | undefined;
  #challenge: Challenge | undefined;
  readonly #tokens = new Map<string, CachedToken>();

  constructor(opts: AuthenticatorOptions) {
    this.registry = opts.registry;
    this.#opts = opts;
  }

  credentials(): Promise<Credentials | undefined> {
    if (this.#opts.credentials !== undefined) return Promise.resolve(this.#opts.credentials ?? undefined);
    this.#credentials ??= lookupCredentials(this.registry, this.#opts);
    return this.#credentials;
  }

  /** The Authorization header to send up front for `scope`, if the registry has told us how. */
  async header(scope: string | undefined): Promise<string | undefined> {
    const challenge = this.#challenge;
    if (!challenge) return undefined;
    if (challenge.scheme === "basic") {
      const creds = await this.credentials();
      return creds && basicHeader(creds);
    }
    return `Bearer ${await this.#token(challenge, scope, false)}`;
  }

  /**
   * Learn from a 401. True if the request is worth retrying with what we now
   * know; false if we have nothing new to offer (no challenge we speak, or
   * Basic with no credentials).
   */
  async answer(response: RegistryResponse, scope: string | undefined): Promise<boolean> {
    const header = response.headers.get("www-authenticate");
    const challenge = header ? pickChallenge(parseChallenges(header)) : undefined;
    if (!challenge) return false;
    const known = this.#challenge;
    this.#challenge = challenge;
    if (challenge.scheme === "basic") {
      // Same Basic challenge again means the credentials we sent are wrong.
      return known?.scheme !== "basic" && (await this.credentials()) !== undefined;
    }
    // Bearer: the token we sent (if any) is stale or lacks the scope. The
    // transport retries once, so a fresh token that fails too ends it.
    await this.#token(challenge, scope, true);
    return true;
  }

  /** How the registry asked to be authenticated ("basic", "bearer"); undefined if it never asked. */
  get scheme(): string | undefined {
    return this.#challenge?.scheme;
  }

  async #token(challenge: Challenge, scope: string | undefined, fresh: boolean): Promise<string> {
    const key = tokenKey(challenge, scope);
    const cached = this.#tokens.get(key);
    if (!fresh && cached && cached.expiresAt > Date.now()) return cached.token;
    const realm = challenge.params.realm;
    if (!realm) throw new SkiffError("ERR_SKIFF_REGISTRY", `registry ${this.registry} sent a Bearer challenge without a realm`);
    let url: URL;
    try {
      url = new URL(realm);
    } catch (err) {
      throw new SkiffError("ERR_SKIFF_REGISTRY", `registry ${this.registry} named an invalid token realm: ${realm}`, { cause: err });
    }
    if (challenge.params.service) url.searchParams.set("service", challenge.params.service);
    const wanted = scope ?? challenge.params.scope;
    if (wanted) url.searchParams.set("scope", wanted);
    const creds = await this.credentials();
    const headers: Record<string, string> = {};
    if (creds) {
      url.searchParams.set("account", creds.username);
      headers.authorization = basicHeader(creds);
    }
    const response = await this.#opts.fetchToken(url, headers);
    if (response.status === 401 || response.status === 403) {
      throw authError(this.registry, creds, `the token service ${url.origin} refused ${creds ? "the credentials" : "anonymous access"} (HTTP ${response.status})`);
    }
    if (!response.ok) {
      throw new SkiffError("ERR_SKIFF_REGISTRY", `token service ${url.origin} for ${this.registry} answered HTTP ${response.status}`, {
        hint: "the registry's auth service is failing; retry later",
        details: { realm, status: response.status },
      });
    }
    const token = parseTokenResponse(response.text, realm);
    this.#tokens.set(key, { token: token.token, expiresAt: Date.now() + token.expiresInS * 1000 - expiryMarginMs });
    return token.token;
  }
}

export function basicHeader(creds: { username: string; password: string }): string {
  return `Basic ${Buffer.from(`${creds.username}:${creds.password}`, "utf8").toString("base64")}`;
}

function tokenKey(challenge: Challenge, scope: string | undefined): string {
  return `${challenge.params.realm ?? ""} ${challenge.params.service ?? ""} ${scope ?? challenge.params.scope ?? ""}`;
}

/** The token service's answer: `token` or (OAuth2 style) `access_token`, with `expires_in` seconds. */
export function parseTokenResponse(text: string, realm: string): { token: string; expiresInS: number } {
  let body: { token?: unknown; access_token?: unknown; expires_in?: unknown };
  try {
    body = JSON.parse(text) as typeof body;
  } catch (err) {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `token service ${realm} did not answer JSON`, { cause: err });
  }
  const token = typeof body.token === "string" && body.token !== "" ? body.token : body.access_token;
  if (typeof token !== "string" || token === "") {
    throw new SkiffError("ERR_SKIFF_REGISTRY", `token service ${realm} answered without a token`);
  }
  const expires = typeof body.expires_in === "number" && body.expires_in > 0 ? body.expires_in : defaultTokenLifetimeS;
  // Never cache for less than the spec's minimum, nor trust a token past our margin.
  return { token, expiresInS: Math.max(expires, defaultTokenLifetimeS) };
}

export function authError(registry: string, creds: Credentials | undefined, why: string): SkiffError {
  return new SkiffError("ERR_SKIFF_AUTH", `not authorized at ${registry}: ${why}`, {
    hint: creds
      ? `the credentials from ${creds.source} were refused; log in again with \`skiff login ${registry}\``
      : `log in with \`skiff login ${registry}\``,
    place: registry,
    details: { registry, ...(creds ? { credentialsFrom: creds.source } : {}) },
  });
}
