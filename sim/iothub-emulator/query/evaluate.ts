/** Evaluates a parsed condition against a twin document (as REST renders it). */
import { isJsonObject, type Json } from "../state/json.ts";
import type { Expr, Literal, Operand } from "./parse.ts";

function resolvePath(doc: Json, path: string[]): Json | undefined {
  let cur: Json | undefined = doc;
  for (const seg of path) {
    if (!isJsonObject(cur)) return undefined;
    // Paths are case-sensitive in property names, but top-level system names are matched loosely.
    cur =
      seg in cur ? cur[seg] : cur[Object.keys(cur).find((k) => k.toLowerCase() === seg.toLowerCase()) ?? ""];
  }
  return cur;
}

function value(op: Operand, doc: Json): Json | undefined {
  return op.kind === "literal" ? op.value : resolvePath(doc, op.path);
}

function comparable(v: Json | undefined): v is Literal {
  return v === null || typeof v === "string" || typeof v === "number" || typeof v === "boolean";
}

export function evaluate(expr: Expr, doc: Json): boolean {
  switch (expr.kind) {
    case "true":
      return true;
    case "and":
      return evaluate(expr.left, doc) && evaluate(expr.right, doc);
    case "or":
      return evaluate(expr.left, doc) || evaluate(expr.right, doc);
    case "not":
      return !evaluate(expr.expr, doc);
    case "defined":
      return resolvePath(doc, expr.path) !== undefined;
    case "compare": {
      const a = value(expr.left, doc);
      const b = value(expr.right, doc);
      // Undefined or structured operands make any comparison undefined, which filters out.
      if (!comparable(a) || !comparable(b)) return false;
      if (expr.op === "=") return a === b;
      if (expr.op === "!=") return a !== b;
      if (typeof a !== typeof b || (typeof a !== "number" && typeof a !== "string")) return false;
      const x = a as number | string;
      const y = b as number | string;
      if (expr.op === "<") return x < y;
      if (expr.op === ">") return x > y;
      if (expr.op === "<=") return x <= y;
      return x >= y;
    }
  }
}
