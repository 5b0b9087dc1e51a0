/** Plain-text tables for the terminal, coloured only on a TTY without a non-empty NO_COLOR. */
import { styleText } from "node:util";
import { colorWanted } from "../lib/color.ts";

export function useColor(
  stream: NodeJS.WriteStream = process.stdout,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  return colorWanted(stream.isTTY, env);
}

type Style = Parameters<typeof styleText>[0];

export function paint(color: boolean, style: Style, text: string): string {
  return color ? styleText(style, text) : text;
}

/** Left-aligned columns; `cells` may carry colour codes, widths use the raw text. */
export function table(headers: string[], rows: Array<Array<{ text: string; styled?: string }>>): string {
  const widths = headers.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i]?.text.length ?? 0)));
  const line = (cells: Array<{ text: string; styled?: string }>) =>
    cells
      .map((c, i) => (c.styled ?? c.text) + " ".repeat((widths[i] ?? 0) - c.text.length))
      .join("  ")
      .trimEnd();
  return [line(headers.map((h) => ({ text: h }))), ...rows.map(line)].join("\n");
}
