/**
 * A small ARM template expression parser and evaluator, enough for the functions `infra/main.json`
 * uses, so the infrastructure tests can check that every expression parses, that every parameter
 * and variable it names exists, and what the template computes from its parameters (names, port
 * ranges, app settings, cloud-init) without a subscription. Values only Azure knows at deployment
 * (`reference`, `listKeys`) evaluate to a `Deferred` marker that strings carry along.
 */

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./index.ts";

export type Template = {
  $schema: string;
  contentVersion: string;
  parameters: Record<string, { type: string; defaultValue?: unknown; [k: string]: unknown }>;
  variables: Record<string, unknown>;
  resources: Resource[];
  outputs: Record<string, { type: string; value: unknown }>;
  [k: string]: unknown;
};

export type Resource = {
  type: string;
  apiVersion: string;
  name: string;
  [k: string]: unknown;
};

/** The template's first resource of `type`, typed as the caller reads it. */
export function findResource<T>(template: Template, type: string): Resource & T {
  const r = template.resources.find((x) => x.type === type);
  if (!r) throw new Error(`the template has no ${type}`);
  return r as Resource & T;
}

export function loadTemplate(): Template {
  return JSON.parse(readFileSync(join(REPO_ROOT, "infra/main.json"), "utf8")) as Template;
}

// ---------- parsing ----------

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
  extensionResourceId: [3, 16],
  format: [1, 64],
  guid: [1, 16],
  items: [1, 1],
  join: [2, 2],
  json: [1, 1],
  lambda: [2, 8],
  lambdaVariables: [1, 1],
  listKeys: [2, 2],
  map: [2, 2],
  mul: [2, 2],
  parameters: [1, 1],
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

// ---------- evaluation ----------

/** A value only Azure knows at deployment (a `reference` or `list*` result). */
export class Deferred {
  constructor(readonly what: string) {}
  toString(): string {
    return `<deferred ${this.what}>`;
  }
}

export interface EvalContext {
  template: Template;
  parameters?: Record<string, unknown>;
  copyIndex?: Record<string, number>;
  resourceGroupName?: string;
}

type Lambda = { lambda: string[]; body: Expr };

const fakeHash = (parts: unknown[]) => createHash("sha256").update(parts.map(String).join("|")).digest("hex");

function text(v: unknown): string {
  if (v instanceof Deferred) return v.toString();
  if (typeof v === "string") return v;
  if (typeof v === "number" || typeof v === "boolean") return String(v);
  return JSON.stringify(v);
}

/** ARM's `format`: .NET composite formatting, `{n}` placeholders and `{{` / `}}` escapes. */
export function armFormat(pattern: string, args: unknown[]): string {
  return pattern.replace(/\{\{|\}\}|\{(\d+)\}/g, (m, n: string | undefined) => {
    if (m === "{{") return "{";
    if (m === "}}") return "}";
    const index = Number(n);
    if (index >= args.length) throw new Error(`format: no argument {${index}}`);
    return text(args[index]);
  });
}

export function evaluate(source: string, ctx: EvalContext): unknown {
  return evalExpr(parseExpression(source), ctx, {});
}

/** Evaluates every expression inside a JSON value (objects and arrays recursively). */
export function evaluateValue(value: unknown, ctx: EvalContext): unknown {
  if (isExpression(value)) return evaluate(value, ctx);
  if (Array.isArray(value)) return value.map((v) => evaluateValue(v, ctx));
  if (value && typeof value === "object")
    return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, evaluateValue(v, ctx)]));
  return value;
}

function parameterValue(name: string, ctx: EvalContext): unknown {
  const p = ctx.template.parameters[name];
  if (!p) throw new Error(`parameter ${name} is not declared`);
  if (ctx.parameters && name in ctx.parameters) return ctx.parameters[name];
  if (!("defaultValue" in p)) throw new Error(`parameter ${name} has no value and no default`);
  return evaluateValue(p.defaultValue, ctx);
}

function evalExpr(e: Expr, ctx: EvalContext, scope: Record<string, unknown>): unknown {
  switch (e.kind) {
    case "string":
    case "number":
      return e.value;
    case "member": {
      const target = evalExpr(e.target, ctx, scope);
      if (target instanceof Deferred) return new Deferred(`${target.what}.${e.property}`);
      if (!target || typeof target !== "object" || !(e.property in target))
        throw new Error(`no property ${e.property}`);
      return (target as Record<string, unknown>)[e.property];
    }
    case "index": {
      const target = evalExpr(e.target, ctx, scope);
      const index = evalExpr(e.index, ctx, scope);
      if (target instanceof Deferred) return new Deferred(`${target.what}[${text(index)}]`);
      return (target as Record<string, unknown>)[String(index)];
    }
    case "call":
      break;
  }
  const arg = (n: number) => evalExpr(e.args[n] as Expr, ctx, scope);
  const all = () => e.args.map((a) => evalExpr(a, ctx, scope));
  const num = (n: number) => {
    const v = arg(n);
    if (typeof v !== "number") throw new Error(`${e.name}: argument ${n} is not a number`);
    return v;
  };
  switch (e.name) {
    case "parameters":
      return parameterValue(String(arg(0)), ctx);
    case "variables": {
      const name = String(arg(0));
      if (!(name in ctx.template.variables)) throw new Error(`variable ${name} is not declared`);
      return evaluateValue(ctx.template.variables[name], ctx);
    }
    case "lambdaVariables": {
      const name = String(arg(0));
      if (!(name in scope)) throw new Error(`lambda variable ${name} is not in scope`);
      return scope[name];
    }
    case "lambda": {
      const names = e.args.slice(0, -1).map((a) => {
        if (a.kind !== "string") throw new Error("lambda: names must be string literals");
        return a.value;
      });
      return { lambda: names, body: e.args[e.args.length - 1] as Expr } satisfies Lambda;
    }
    case "map": {
      const items = arg(0);
      const fn = arg(1) as Lambda;
      if (!Array.isArray(items) || !fn.lambda) throw new Error("map: an array and a lambda expected");
      return items.map((item) => evalExpr(fn.body, ctx, { ...scope, [fn.lambda[0] as string]: item }));
    }
    case "items": {
      const o = arg(0) as Record<string, unknown>;
      return Object.keys(o)
        .sort()
        .map((key) => ({ key, value: o[key] }));
    }
    case "join": {
      const items = arg(0);
      if (!Array.isArray(items)) throw new Error("join: an array expected");
      return items.map(text).join(String(arg(1)));
    }
    case "format":
      return armFormat(
        String(arg(0)),
        e.args.slice(1).map((a) => evalExpr(a, ctx, scope)),
      );
    case "concat":
      return all().map(text).join("");
    case "string": {
      const v = arg(0);
      return typeof v === "string" ? v : text(v);
    }
    case "json":
      return JSON.parse(String(arg(0)));
    case "bool":
      return arg(0) === true || arg(0) === "true";
    case "add":
      return num(0) + num(1);
    case "sub":
      return num(0) - num(1);
    case "mul":
      return num(0) * num(1);
    case "toLower":
      return text(arg(0)).toLowerCase();
    case "take": {
      const v = arg(0);
      return typeof v === "string" ? v.slice(0, num(1)) : (v as unknown[]).slice(0, num(1));
    }
    case "replace":
      return text(arg(0))
        .split(String(arg(1)))
        .join(String(arg(2)));
    case "base64":
      return Buffer.from(text(arg(0)), "utf8").toString("base64");
    case "uniqueString":
      return BigInt(`0x${fakeHash(all()).slice(0, 16)}`)
        .toString(36)
        .padStart(13, "a")
        .slice(0, 13);
    case "guid": {
      const h = fakeHash(all());
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20, 32)}`;
    }
    case "copyIndex": {
      const loop = e.args.length > 0 && typeof arg(0) === "string" ? String(arg(0)) : "";
      const offset =
        e.args.length === 2 ? num(1) : e.args.length === 1 && typeof arg(0) === "number" ? num(0) : 0;
      const index = ctx.copyIndex?.[loop];
      if (index === undefined) throw new Error(`copyIndex('${loop}') outside its loop`);
      return index + offset;
    }
    case "resourceGroup": {
      const name = ctx.resourceGroupName ?? "relay-fleet-rg";
      return {
        id: `/subscriptions/00000000-0000-0000-0000-000000000000/resourceGroups/${name}`,
        name,
        location: "westeurope",
      };
    }
    case "subscription":
      return {
        id: "/subscriptions/00000000-0000-0000-0000-000000000000",
        subscriptionId: "00000000-0000-0000-0000-000000000000",
        tenantId: "11111111-1111-1111-1111-111111111111",
      };
    case "environment":
      return {
        name: "AzureCloud",
        suffixes: { storage: "core.windows.net", keyvaultDns: ".vault.azure.net" },
      };
    case "resourceId":
    case "subscriptionResourceId": {
      const [type, ...names] = all().map(text);
      const typeParts = (type as string).split("/");
      let id = `/providers/${typeParts[0]}/${typeParts[1]}/${names[0]}`;
      for (let k = 2; k < typeParts.length; k++) id += `/${typeParts[k]}/${names[k - 1]}`;
      const rg = evalExpr({ kind: "call", name: "resourceGroup", args: [] }, ctx, scope) as { id: string };
      return e.name === "resourceId"
        ? `${rg.id}${id}`
        : `/subscriptions/00000000-0000-0000-0000-000000000000${id}`;
    }
    case "extensionResourceId": {
      const [scope, type, ...names] = all().map(text);
      const typeParts = (type as string).split("/");
      let id = `${scope}/providers/${typeParts[0]}/${typeParts[1]}/${names[0]}`;
      for (let k = 2; k < typeParts.length; k++) id += `/${typeParts[k]}/${names[k - 1]}`;
      return id;
    }
    case "reference":
      return new Deferred(`reference(${text(arg(0))})`);
    case "listKeys":
      return new Deferred(`listKeys(${text(arg(0))})`);
  }
  throw new Error(`no evaluator for ${e.name}`);
}

/** ARM resource types and names of a resource declared with a full `a/b/c` name. */
export function resourcePath(resource: Resource, ctx: EvalContext): string {
  const typeParts = resource.type.split("/");
  const names = String(evaluateValue(resource.name, ctx)).split("/");
  if (names.length !== typeParts.length - 1)
    throw new Error(`${resource.type} ${names.join("/")}: name segments do not match the type`);
  let path = `${typeParts[0]}/${typeParts[1]}/${names[0]}`;
  for (let k = 2; k < typeParts.length; k++) path += `/${typeParts[k]}/${names[k - 1]}`;
  return path;
}
