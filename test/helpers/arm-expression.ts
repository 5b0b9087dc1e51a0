/**
 * ARM template expressions parsed into a tree (`[concat(...)]`, properties, indexes, literals),
 * with the arity of each function `infra/main.json` uses, and walkers over a template's
 * expressions and the calls inside one.
 */

export type Expr =
  | { kind: "string"; value: string }
  | { kind: "number"; value: number }
  | { kind: "call"; name: string; args: Expr[] }
  | { kind: "member"; target: Expr; property: string }
  | { kind: "index"; target: Expr; index: Expr };

/** Functions the template may use, with their argument counts. Anything else fails the parse. */
const ARITY: Record<string, [number, number]> = {
  add: [2, 2],
  base64: [1, 1],
  bool: [1, 1],
  concat: [1, 64],
  copyIndex: [0, 2],
  environment: [0, 0],
  equals: [2, 2],
  extensionResourceId: [3, 16],
  format: [1, 64],
  guid: [1, 16],
  if: [3, 3],
  items: [1, 1],
  join: [2, 2],
  json: [1, 1],
  lambda: [2, 8],
  lambdaVariables: [1, 1],
  listKeys: [2, 2],
  map: [2, 2],
  mul: [2, 2],
  parameters: [1, 1],
  range: [2, 2],
  reference: [1, 3],
  replace: [3, 3],
  resourceGroup: [0, 0],
  resourceId: [2, 16],
  string: [1, 1],
  sub: [2, 2],
  subscription: [0, 0],
  subscriptionResourceId: [2, 16],
  take: [2, 2],
  toLower: [1, 1],
  uniqueString: [1, 16],
  variables: [1, 1],
};

export const KNOWN_FUNCTIONS = new Set(Object.keys(ARITY));

/** True for a JSON string that ARM reads as an expression (`[...]`, but not the `[[` escape). */
export function isExpression(value: unknown): value is string {
  return typeof value === "string" && value.startsWith("[") && !value.startsWith("[[") && value.endsWith("]");
}

/** Parses the text between the outer brackets; throws with the position on any error. */
export function parseExpression(source: string): Expr {
  const text = source.slice(1, -1);
  let i = 0;
  const fail = (msg: string): never => {
    throw new Error(`${msg} at ${i} in ${source}`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i] ?? "")) i++;
  };
  const ident = () => {
    const m = /^[A-Za-z_][A-Za-z0-9_]*/.exec(text.slice(i));
    if (!m) fail("a name expected");
    i += (m as RegExpExecArray)[0].length;
    return (m as RegExpExecArray)[0];
  };
  const primary = (): Expr => {
    ws();
    const c = text[i];
    if (c === "'") {
      let value = "";
      i++;
      for (;;) {
        if (i >= text.length) fail("unterminated string");
        if (text[i] === "'") {
          if (text[i + 1] === "'") {
            value += "'";
            i += 2;
            continue;
          }
          i++;
          break;
        }
        value += text[i];
        i++;
      }
      return { kind: "string", value };
    }
    if (c !== undefined && /[-0-9]/.test(c)) {
      const m = /^-?\d+/.exec(text.slice(i));
      if (!m) fail("a number expected");
      i += (m as RegExpExecArray)[0].length;
      return { kind: "number", value: Number((m as RegExpExecArray)[0]) };
    }
    const name = ident();
    ws();
    if (text[i] !== "(") fail(`"(" expected after ${name}`);
    i++;
    const args: Expr[] = [];
    ws();
    if (text[i] === ")") i++;
    else
      for (;;) {
        args.push(expression());
        ws();
        if (text[i] === ",") {
          i++;
          continue;
        }
        if (text[i] === ")") {
          i++;
          break;
        }
        fail('"," or ")" expected');
      }
    const arity = ARITY[name];
    if (!arity) fail(`unknown function ${name}`);
    const [min, max] = arity as [number, number];
    if (args.length < min || args.length > max)
      fail(`${name} takes ${min}-${max} arguments, not ${args.length}`);
    return { kind: "call", name, args };
  };
  const expression = (): Expr => {
    let e = primary();
    for (;;) {
      ws();
      if (text[i] === ".") {
        i++;
        e = { kind: "member", target: e, property: ident() };
      } else if (text[i] === "[") {
        i++;
        const index = expression();
        ws();
        if (text[i] !== "]") fail('"]" expected');
        i++;
        e = { kind: "index", target: e, index };
      } else return e;
    }
  };
  const e = expression();
  ws();
  if (i !== text.length) fail("unexpected text");
  return e;
}

/** Every expression string anywhere in a JSON value, with its JSON path. */
export function* expressionsIn(value: unknown, path = "$"): Generator<{ path: string; source: string }> {
  if (isExpression(value)) yield { path, source: value };
  else if (Array.isArray(value))
    for (const [k, v] of value.entries()) yield* expressionsIn(v, `${path}[${k}]`);
  else if (value && typeof value === "object")
    for (const [k, v] of Object.entries(value)) yield* expressionsIn(v, `${path}.${k}`);
}

/** Every call in an expression tree (depth first). */
export function* callsIn(e: Expr): Generator<Extract<Expr, { kind: "call" }>> {
  if (e.kind === "call") {
    yield e;
    for (const a of e.args) yield* callsIn(a);
  } else if (e.kind === "member") yield* callsIn(e.target);
  else if (e.kind === "index") {
    yield* callsIn(e.target);
    yield* callsIn(e.index);
  }
}
