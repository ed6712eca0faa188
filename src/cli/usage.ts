/**
 * Errors from argument parsing (unknown option or command, missing
 * argument, invalid choice) as SkiffErrors, so they have a code, a place, a
 * hint and honour --json like every other error. Commander reports each one
 * through a method of the command being parsed; SkiffCommand notes what the
 * method was given (the place) and turns the final `error()` into a throw,
 * instead of reading commander's printed text back.
 */
import { Command, Option, type Argument } from "commander";
import { closest, SkiffError } from "../pure.js";

// Commander's reporting methods exist at run time but are left out of its typings.
declare module "commander" {
  interface Command {
    unknownOption(flag: string): void;
    unknownCommand(): void;
    missingArgument(name: string): void;
    optionMissingArgument(option: Option): void;
    missingMandatoryOptionValue(option: Option): void;
    _callParseArg(target: Option | Argument, value: string, previous: unknown, invalidArgumentMessage: string): unknown;
  }
}

/** `skiff image ls`: the words that run `cmd`. */
export function commandPath(cmd: Command): string {
  const names: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) names.unshift(c.name());
  return names.join(" ");
}

/** Long flags a command accepts, its ancestors' included (global flags such as --json). */
/** The enclosing command (not `cmd` itself) that has `flag` as an option. */
function ancestorWith(cmd: Command, flag: string): Command | undefined {
  for (let c = cmd.parent; c !== null; c = c.parent) if (c.options.some((o) => o.long === flag || o.short === flag)) return c;
  return undefined;
}

function knownFlags(cmd: Command): string[] {
  const flags: string[] = [];
  for (let c: Command | null = cmd; c !== null; c = c.parent) {
    for (const o of c.options) if (o.long !== undefined && !o.hidden) flags.push(o.long);
  }
  return flags;
}

function visibleCommandNames(cmd: Command): string[] {
  return cmd.commands.filter((c) => !(c as unknown as { _hidden?: boolean })._hidden).flatMap((c) => [c.name(), ...c.aliases()]);
}

export class SkiffCommand extends Command {
  /** What the reporting method was given: the flag, `<argument>` or command word. */
  private usagePlace: string | undefined;
  private usageSuggestion: string | undefined;

  constructor(name?: string) {
    super(name);
    // `skiff ps a b c` is a mistake to say, not to ignore (commander 12 lets words a command does not take pass).
    this.allowExcessArguments(false);
  }

  override createCommand(name?: string): Command {
    return new SkiffCommand(name);
  }

  override unknownOption(flag: string): void {
    this.usagePlace = flag;
    const owner = ancestorWith(this, flag);
    // A flag of an enclosing command (skiff's --json) is known, only misplaced: say where it goes, not "did you mean" itself.
    this.usageSuggestion =
      owner !== undefined
        ? `\`${commandPath(owner)} ${flag} ${commandPath(this).slice(commandPath(owner).length + 1)} …\` (${flag} belongs to \`${commandPath(owner)}\`)`
        : flag.startsWith("--")
          ? closest(flag, knownFlags(this))
          : undefined;
    super.unknownOption(flag);
  }

  override unknownCommand(): void {
    this.usagePlace = this.args[0];
    this.usageSuggestion = this.args[0] === undefined ? undefined : closest(this.args[0], visibleCommandNames(this));
    super.unknownCommand();
  }

  override missingArgument(name: string): void {
    this.usagePlace = `<${name}>`;
    super.missingArgument(name);
  }

  override optionMissingArgument(option: Option): void {
    this.usagePlace = option.long ?? option.short;
    super.optionMissingArgument(option);
  }

  override missingMandatoryOptionValue(option: Option): void {
    this.usagePlace = option.long ?? option.short;
    super.missingMandatoryOptionValue(option);
  }

  override _callParseArg(target: Option | Argument, value: string, previous: unknown, invalidArgumentMessage: string): unknown {
    this.usagePlace = target instanceof Option ? (target.long ?? target.short) : `<${target.name()}>`;
    return super._callParseArg(target, value, previous, invalidArgumentMessage);
  }

  /** Every parse error ends here: throw it as a SkiffError (main.ts prints it like any other). */
  override error(message: string, options?: { code?: string; exitCode?: number }): never {
    const help = `see \`${commandPath(this)} --help\``;
    const code = options?.code ?? "commander.error";
    const place = code === "commander.excessArguments" ? commandPath(this) : this.usagePlace;
    const near = this.usageSuggestion;
    const hint =
      near === undefined
        ? help
        : code === "commander.unknownCommand"
          ? `did you mean \`${commandPath(this)} ${near}\`? ${help}`
          : `did you mean ${near}? ${help}`;
    throw new SkiffError("ERR_SKIFF_USAGE", message.replace(/^error: /, ""), {
      hint,
      ...(place === undefined ? {} : { place }),
      details: { commander: code },
    });
  }
}

/** --json asked for before any `--` (after it, words belong to a guest command). */
export function wantsJson(argv: string[]): boolean {
  const end = argv.indexOf("--");
  return (end === -1 ? argv : argv.slice(0, end)).includes("--json");
}
