/**
 * A compose `command: "redis-server --port 6380"` string becomes an argv the
 * way a POSIX shell would split it, without running a shell: words split on
 * blanks, '…' literal, "…" with \" \\ \$ \` escapes, a backslash outside
 * quotes escapes the next character. No expansion ($VAR, globs) happens —
 * compose does not expand there either.
 */

/** The words of `text`, or an error message (an unterminated quote or a trailing backslash). */
export function splitShellWords(text: string): { words: string[] } | { error: string } {
  const words: string[] = [];
  let word = "";
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const c = text[i]!;
    if (c === " " || c === "\t" || c === "\n" || c === "\r") {
      if (inWord) words.push(word);
      word = "";
      inWord = false;
      continue;
    }
    inWord = true;
    if (c === "\\") {
      if (i + 1 >= text.length) return { error: "ends with a lone backslash" };
      // A backslash-newline joins lines, as in a shell.
      if (text[i + 1] !== "\n") word += text[i + 1];
      i++;
    } else if (c === "'") {
      const end = text.indexOf("'", i + 1);
      if (end < 0) return { error: "has an unterminated ' quote" };
      word += text.slice(i + 1, end);
      i = end;
    } else if (c === '"') {
      let j = i + 1;
      for (; j < text.length && text[j] !== '"'; j++) {
        if (text[j] === "\\" && j + 1 < text.length && '"\\$`\n'.includes(text[j + 1]!)) j++;
        if (text[j] !== "\n" || text[j - 1] !== "\\") word += text[j];
      }
      if (j >= text.length) return { error: 'has an unterminated " quote' };
      i = j;
    } else {
      word += c;
    }
  }
  if (inWord) words.push(word);
  return { words };
}
