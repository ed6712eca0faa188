/**
 * `WWW-Authenticate` challenges (RFC 7235): what a registry answers a 401
 * with. One header may carry several challenges
 * (`Basic realm="r", Bearer realm="…",service="…"`), and parameter values
 * may be quoted with escapes, so this is a small tokenizer, not a split.
 */

export interface Challenge {
  /** Lowercased: "bearer", "basic". */
  scheme: string;
  /** Parameter names lowercased: realm, service, scope, error. */
  params: Record<string, string>;
}

const tokenChar = /[!#$%&'*+\-.^_`|~0-9A-Za-z]/;

export function parseChallenges(header: string): Challenge[] {
  const challenges: Challenge[] = [];
  let i = 0;
  const skipSpace = () => {
    while (i < header.length && /[\s,]/.test(header[i]!)) i++;
  };
  const readToken = (): string => {
    const start = i;
    while (i < header.length && tokenChar.test(header[i]!)) i++;
    return header.slice(start, i);
  };
  const readValue = (): string => {
    if (header[i] !== '"') {
      const start = i;
      while (i < header.length && !/[\s,]/.test(header[i]!)) i++;
      return header.slice(start, i);
    }
    let value = "";
    for (i++; i < header.length && header[i] !== '"'; i++) {
      if (header[i] === "\\" && i + 1 < header.length) i++;
      value += header[i];
    }
    i++;
    return value;
  };

  skipSpace();
  while (i < header.length) {
    const scheme = readToken();
    if (scheme === "") {
      i++; // not a token: skip the stray character
      skipSpace();
      continue;
    }
    const challenge: Challenge = { scheme: scheme.toLowerCase(), params: {} };
    challenges.push(challenge);
    for (;;) {
      skipSpace();
      const mark = i;
      const name = readToken();
      while (i < header.length && header[i] === " ") i++;
      if (name === "" || header[i] !== "=") {
        i = mark; // the next scheme (or the end)
        break;
      }
      i++;
      while (i < header.length && header[i] === " ") i++;
      challenge.params[name.toLowerCase()] = readValue();
    }
  }
  return challenges;
}

/** The challenge skiff will answer: Bearer if offered (registries that offer both prefer it), else Basic. */
export function pickChallenge(challenges: Challenge[]): Challenge | undefined {
  return challenges.find((c) => c.scheme === "bearer" && c.params.realm) ?? challenges.find((c) => c.scheme === "basic");
}
