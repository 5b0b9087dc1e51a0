/**
 * The IoT Hub twin query language subset the project uses: `SELECT * | COUNT() AS x FROM devices |
 * devices.modules [WHERE cond]` with `= != <> < > <= >=`, `AND`/`OR`/`NOT`, parentheses,
 * `IS_DEFINED(path)`, string/number/boolean/null literals and dotted paths. The same condition
 * grammar is a configuration's `targetCondition`. Errors are 400 HubErrors with the position.
 */
import { HubError } from "../errors.ts";

export type Literal = string | number | boolean | null;
export type Operand = { kind: "path"; path: string[] } | { kind: "literal"; value: Literal };
export type CompareOp = "=" | "!=" | "<" | ">" | "<=" | ">=";

export type Expr =
  | { kind: "and" | "or"; left: Expr; right: Expr }
  | { kind: "not"; expr: Expr }
  | { kind: "defined"; path: string[] }
  | { kind: "compare"; op: CompareOp; left: Operand; right: Operand }
  | { kind: "true" };

export interface ParsedQuery {
  source: "devices" | "devices.modules";
  where: Expr;
  /** `SELECT COUNT() AS name`: answer `[{name: n}]` instead of twins. */
  countAs?: string;
}

type Token =
  | { t: "word"; v: string; pos: number }
  | { t: "str"; v: string; pos: number }
  | { t: "num"; v: number; pos: number }
  | { t: "op"; v: string; pos: number };

function fail(text: string, pos: number, message: string): HubError {
  return new HubError(
    "ArgumentInvalid",
    `Query error at position ${pos}: ${message} in '${text.slice(0, 200)}'`,
  );
}

function tokenize(text: string): Token[] {
  const out: Token[] = [];
  let i = 0;
  while (i < text.length) {
    const c = text[i]!;
    if (/\s/.test(c)) {
      i++;
    } else if (c === "'" || c === '"') {
      let v = "";
      let j = i + 1;
      for (;;) {
        if (j >= text.length) throw fail(text, i, "unterminated string");
        if (text[j] === c) {
          if (text[j + 1] === c) {
            v += c;
            j += 2;
            continue;
          }
          break;
        }
        v += text[j];
        j++;
      }
      out.push({ t: "str", v, pos: i });
      i = j + 1;
    } else if (/[0-9]/.test(c) || (c === "-" && /[0-9]/.test(text[i + 1] ?? ""))) {
      const m = /^-?\d+(\.\d+)?([eE][+-]?\d+)?/.exec(text.slice(i))!;
      out.push({ t: "num", v: Number(m[0]), pos: i });
      i += m[0].length;
    } else if (/[A-Za-z_$]/.test(c)) {
      const m = /^[A-Za-z_$][A-Za-z0-9_$-]*(\.[A-Za-z0-9_$-]+)*/.exec(text.slice(i))!;
      out.push({ t: "word", v: m[0], pos: i });
      i += m[0].length;
    } else {
      const two = text.slice(i, i + 2);
      if (["!=", "<>", "<=", ">="].includes(two)) {
        out.push({ t: "op", v: two === "<>" ? "!=" : two, pos: i });
        i += 2;
      } else if ("=<>(),*".includes(c)) {
        out.push({ t: "op", v: c, pos: i });
        i++;
      } else {
        throw fail(text, i, `unexpected character '${c}'`);
      }
    }
  }
  return out;
}

class Parser {
  private i = 0;
  constructor(
    private readonly text: string,
    private readonly tokens: Token[],
  ) {}

  private peek(): Token | undefined {
    return this.tokens[this.i];
  }

  private isWord(word: string): boolean {
    const tok = this.peek();
    return tok?.t === "word" && tok.v.toUpperCase() === word;
  }

  private isOp(op: string): boolean {
    const tok = this.peek();
    return tok?.t === "op" && tok.v === op;
  }

  private expectWord(word: string): void {
    if (!this.isWord(word)) throw this.error(`expected ${word}`);
    this.i++;
  }

  private expectOp(op: string): void {
    if (!this.isOp(op)) throw this.error(`expected '${op}'`);
    this.i++;
  }

  error(message: string): HubError {
    return fail(this.text, this.peek()?.pos ?? this.text.length, message);
  }

  atEnd(): boolean {
    return this.i >= this.tokens.length;
  }

  query(): ParsedQuery {
    this.expectWord("SELECT");
    let countAs: string | undefined;
    if (this.isOp("*")) {
      this.i++;
    } else if (this.isWord("COUNT")) {
      this.i++;
      this.expectOp("(");
      this.expectOp(")");
      this.expectWord("AS");
      const name = this.peek();
      if (name?.t !== "word") throw this.error("expected a name after AS");
      countAs = name.v;
      this.i++;
    } else {
      throw this.error("only SELECT * and SELECT COUNT() AS name are supported");
    }
    this.expectWord("FROM");
    const src = this.peek();
    if (src?.t !== "word" || !["devices", "devices.modules"].includes(src.v.toLowerCase()))
      throw this.error("FROM must be devices or devices.modules");
    this.i++;
    const source = src.v.toLowerCase() as ParsedQuery["source"];
    let where: Expr = { kind: "true" };
    if (this.isWord("WHERE")) {
      this.i++;
      where = this.expr();
    }
    if (!this.atEnd()) throw this.error("unexpected text");
    return { source, where, ...(countAs === undefined ? {} : { countAs }) };
  }

  expr(): Expr {
    let left = this.and();
    while (this.isWord("OR")) {
      this.i++;
      left = { kind: "or", left, right: this.and() };
    }
    return left;
  }

  private and(): Expr {
    let left = this.not();
    while (this.isWord("AND")) {
      this.i++;
      left = { kind: "and", left, right: this.not() };
    }
    return left;
  }

  private not(): Expr {
    if (this.isWord("NOT")) {
      this.i++;
      return { kind: "not", expr: this.not() };
    }
    return this.primary();
  }

  private primary(): Expr {
    if (this.isOp("(")) {
      this.i++;
      const e = this.expr();
      this.expectOp(")");
      return e;
    }
    if (this.isWord("IS_DEFINED")) {
      this.i++;
      this.expectOp("(");
      const p = this.operand();
      if (p.kind !== "path") throw this.error("IS_DEFINED takes a property path");
      this.expectOp(")");
      return { kind: "defined", path: p.path };
    }
    const left = this.operand();
    const op = this.peek();
    if (op?.t !== "op" || !["=", "!=", "<", ">", "<=", ">="].includes(op.v))
      throw this.error("expected a comparison");
    this.i++;
    return { kind: "compare", op: op.v as CompareOp, left, right: this.operand() };
  }

  private operand(): Operand {
    const tok = this.peek();
    if (!tok) throw this.error("unexpected end of query");
    this.i++;
    if (tok.t === "str" || tok.t === "num") return { kind: "literal", value: tok.v };
    if (tok.t === "word") {
      const upper = tok.v.toUpperCase();
      if (upper === "TRUE") return { kind: "literal", value: true };
      if (upper === "FALSE") return { kind: "literal", value: false };
      if (upper === "NULL") return { kind: "literal", value: null };
      return { kind: "path", path: tok.v.split(".") };
    }
    this.i--;
    throw this.error(`unexpected '${tok.v}'`);
  }
}

export function parseQuery(text: unknown): ParsedQuery {
  if (typeof text !== "string" || text.trim() === "")
    throw new HubError("ArgumentInvalid", "query must be a non-empty string");
  return new Parser(text, tokenize(text)).query();
}

/** A configuration's `targetCondition` (`*` or empty targets every device). */
export function parseCondition(text: string): Expr {
  if (text.trim() === "" || text.trim() === "*") return { kind: "true" };
  const p = new Parser(text, tokenize(text));
  const e = p.expr();
  if (!p.atEnd()) throw p.error("unexpected text");
  return e;
}
