/** infra/main.json as the infrastructure tests read it: the document and its resources. */
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
