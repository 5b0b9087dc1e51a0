/**
 * Whether to colour terminal output, shared by the CLI and the simulation's start screen.
 * NO_COLOR (no-color.org) counts only when set to a non-empty value; colour also needs a TTY.
 */
export function colorWanted(isTTY: boolean | undefined, env: NodeJS.ProcessEnv = process.env): boolean {
  return isTTY === true && !env.NO_COLOR;
}
