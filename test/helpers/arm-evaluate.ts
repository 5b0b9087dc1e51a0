/**
 * Evaluation of ARM template expressions against a template and its parameters. Values only Azure
 * knows at deployment (`reference`, `listKeys`) evaluate to a `Deferred` marker that strings
 * carry along.
 */
import { createHash } from "node:crypto";
import { type Expr, isExpression, parseExpression } from "./arm-expression.ts";
import type { Resource, Template } from "./arm-template-document.ts";

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
    case "range":
      return Array.from({ length: num(1) }, (_, k) => num(0) + k);
    case "equals":
      return JSON.stringify(arg(0)) === JSON.stringify(arg(1));
    case "if":
      return arg(0) === true ? arg(1) : arg(2);
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

/** A resource as ARM deploys it: one element of its `copy` loop, with the context that evaluates it. */
export interface DeployedResource {
  resource: Resource;
  ctx: EvalContext;
}

/**
 * The template's resources with resource-level `copy` loops expanded, as ARM expands them: one entry
 * per element, each with `copyIndex()` set for its loop (its own name and the unnamed form).
 */
export function deployedResources(ctx: EvalContext): DeployedResource[] {
  return ctx.template.resources.flatMap((resource) => {
    const loop = resource.copy as { name: string; count: unknown } | undefined;
    if (!loop) return [{ resource, ctx }];
    const count = evaluateValue(loop.count, ctx);
    if (typeof count !== "number") throw new Error(`copy ${loop.name}: the count is not a number`);
    return Array.from({ length: count }, (_, i) => ({
      resource,
      ctx: { ...ctx, copyIndex: { ...ctx.copyIndex, "": i, [loop.name]: i } },
    }));
  });
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
