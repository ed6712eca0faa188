/**
 * `skiff completion bash|zsh|fish`: the scripts, generated from the command
 * tree (completion-spec.ts). Verbs and flags are baked in; names of VMs,
 * images, networks and volumes come from `skiff __complete KIND` at Tab
 * time, which reads the records and boots nothing.
 */
import type { CompletionNode } from "./completion-spec.js";

/** Single-quoted for sh and fish alike (our words have no quotes or backslashes, but be safe). */
function q(s: string): string {
  return `'${s.replace(/\\/g, "\\\\").replace(/'/g, "'\\''")}'`;
}

function flagKindCases(nodes: CompletionNode[], indent: string, arm: (key: string, kind: string) => string): string[] {
  return nodes.flatMap((n) => Object.entries(n.flagKinds).map(([flag, kind]) => indent + arm(`${n.path}|${flag}`, kind)));
}

/**
 * Bash (and zsh through bashcompinit: `emulate -L ksh` gives it bash's
 * 0-based arrays and word splitting). The word walk mirrors commander's
 * parse: a verb extends the command path, a valued flag eats the next word,
 * anything else is a positional argument.
 */
export function bashScript(nodes: CompletionNode[]): string {
  const cases = nodes.map(
    (n) =>
      `    ${q(n.path)}) _skiff_verbs=${q(n.verbs.join(" "))} _skiff_flags=${q(n.flags.join(" "))} _skiff_valued=${q(n.valued.join(" "))} _skiff_args=${q(n.args.join(" "))} ;;`,
  );
  return `# skiff completion for bash. Load it with:  source <(skiff completion bash)
# or for every shell: skiff completion bash > /etc/bash_completion.d/skiff

_skiff_node() {
  _skiff_verbs="" _skiff_flags="" _skiff_valued="" _skiff_args=""
  case "$1" in
${cases.join("\n")}
  esac
}

_skiff_flag_kind() {
  case "$1" in
${flagKindCases(nodes, "    ", (key, kind) => `${q(key)}) echo ${kind} ;;`).join("\n")}
  esac
}

_skiff_complete() {
  [[ -n "\${ZSH_VERSION:-}" ]] && emulate -L ksh
  local cur="\${COMP_WORDS[COMP_CWORD]}" path="" npos=0 skip=0 i w kind=""
  local _skiff_verbs _skiff_flags _skiff_valued _skiff_args
  _skiff_node ""
  for ((i = 1; i < COMP_CWORD; i++)); do
    w="\${COMP_WORDS[i]}"
    if ((skip)); then skip=0; continue; fi
    if [[ "$w" == -* ]]; then
      [[ " $_skiff_valued " == *" $w "* ]] && skip=1
    elif ((npos == 0)) && [[ " $_skiff_verbs " == *" $w "* ]]; then
      path="\${path:+$path }$w"
      _skiff_node "$path"
    else
      npos=$((npos + 1))
    fi
  done
  if ((skip)); then
    kind="$(_skiff_flag_kind "$path|\${COMP_WORDS[COMP_CWORD-1]}")"
  elif [[ "$cur" == -* ]]; then
    COMPREPLY=($(compgen -W "$_skiff_flags" -- "$cur"))
    return
  elif ((npos == 0)) && [[ -n "$_skiff_verbs" ]]; then
    COMPREPLY=($(compgen -W "$_skiff_verbs" -- "$cur"))
    return
  else
    local kinds=($_skiff_args)
    if ((npos < \${#kinds[@]})); then
      kind="\${kinds[npos]}"
    elif ((\${#kinds[@]} > 0)) && [[ "\${kinds[\${#kinds[@]}-1]}" == *"*" ]]; then
      kind="\${kinds[\${#kinds[@]}-1]}"
    fi
    kind="\${kind%"*"}"
  fi
  if [[ -n "$kind" && "$kind" != "-" ]]; then
    COMPREPLY=($(compgen -W "$("\${COMP_WORDS[0]}" __complete "$kind" 2>/dev/null)" -- "$cur"))
  else
    COMPREPLY=($(compgen -f -- "$cur"))
  fi
}

complete -F _skiff_complete skiff
`;
}

export function zshScript(nodes: CompletionNode[]): string {
  return `#compdef skiff
# skiff completion for zsh. Load it with:  source <(skiff completion zsh)
# (it runs the bash completion through zsh's bashcompinit)
(( $+functions[compdef] )) || { autoload -U +X compinit && compinit }
autoload -U +X bashcompinit && bashcompinit

${bashScript(nodes).split("\n").slice(3).join("\n")}`;
}

/**
 * Fish: one `complete` line per verb, flag and name kind, each guarded by
 * `__skiff_at PATH` (the command path of the line being typed, walked as in
 * bash).
 */
export function fishScript(nodes: CompletionNode[]): string {
  const verbCases = nodes.map((n) => `    case ${q(n.path)}\n      set verbs ${n.verbs.map(q).join(" ")}\n      set valued ${n.valued.map(q).join(" ")}`);
  const lines = nodes.flatMap((n) => {
    const at = `-n ${q(`__skiff_at ${q(n.path)}`)}`;
    const verbs = n.verbs.map((v) => `complete -c skiff -f ${at} -a ${q(v)}`);
    const flags = n.flags.map((f) => {
      const spelled = f.startsWith("--") ? `-l ${q(f.slice(2))}` : `-s ${q(f.slice(1))}`;
      const kind = n.flagKinds[f];
      const value = kind === undefined ? (n.valued.includes(f) ? " -r" : "") : ` -x -a ${q(`(skiff __complete ${kind})`)}`;
      return `complete -c skiff ${at} ${spelled}${value}`;
    });
    const kinds = [...new Set(n.args.map((a) => a.replace(/\*$/, "")).filter((a) => a !== "-"))];
    const names = kinds.map((kind) => `complete -c skiff -f ${at} -a ${q(`(skiff __complete ${kind})`)}`);
    return [...verbs, ...flags, ...names];
  });
  return `# skiff completion for fish. Load it with:  skiff completion fish | source
# or keep it:  skiff completion fish > ~/.config/fish/completions/skiff.fish

function __skiff_path --description 'the skiff command path of the line being typed'
  set -l path ''
  set -l skip 0
  set -l verbs
  set -l valued
  for w in (commandline -opc)[2..-1]
    if test $skip = 1
      set skip 0
      continue
    end
    switch $path
${verbCases.join("\n")}
    end
    if string match -q -- '-*' $w
      contains -- $w $valued; and set skip 1
    else if contains -- $w $verbs
      set path (string trim -- "$path $w")
    end
  end
  echo $path
end

function __skiff_at --description 'is the line being typed at this skiff command?'
  set -l path (__skiff_path)
  test "$path" = "$argv[1]"
end

complete -c skiff -e
${lines.join("\n")}
`;
}
