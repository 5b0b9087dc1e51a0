/**
 * Runs a parsed query over the registry with paging. Results are ordered by id so a continuation
 * (an opaque offset bound to the query text) walks a stable sequence.
 */
import { createHash } from "node:crypto";
import { HubError } from "../errors.ts";
import type { Hub } from "../hub.ts";
import { renderTwin } from "../state/identities.ts";
import type { JsonObject } from "../state/json.ts";
import { evaluate } from "./evaluate.ts";
import type { ParsedQuery } from "./parse.ts";

/** Page size when the client sends no `x-ms-max-item-count`, and the most one page may hold. */
export const DEFAULT_PAGE_SIZE = 100;
export const MAX_PAGE_SIZE = 1000;

function queryHash(text: string): string {
  return createHash("sha256").update(text).digest("hex").slice(0, 12);
}

function encodeToken(text: string, offset: number): string {
  return Buffer.from(JSON.stringify({ q: queryHash(text), o: offset })).toString("base64url");
}

function decodeToken(text: string, token: string): number {
  try {
    const t = JSON.parse(Buffer.from(token, "base64url").toString("utf8")) as { q?: unknown; o?: unknown };
    if (t.q === queryHash(text) && typeof t.o === "number" && Number.isInteger(t.o) && t.o >= 0) return t.o;
  } catch {
    // fall through
  }
  throw new HubError("ArgumentInvalid", "x-ms-continuation is not a continuation of this query");
}

export function runQuery(
  hub: Hub,
  text: string,
  query: ParsedQuery,
  pageSize: number,
  continuation: string | undefined,
): { items: JsonObject[]; continuation?: string } {
  const devices = [...hub.store.devices.values()].sort((a, b) => a.deviceId.localeCompare(b.deviceId));
  const twins: JsonObject[] = [];
  for (const dev of devices) {
    if (query.source === "devices") {
      twins.push(renderTwin(dev));
    } else {
      for (const id of Object.keys(dev.modules).sort()) twins.push(renderTwin(dev, dev.modules[id]));
    }
  }
  const matching = twins.filter((t) => evaluate(query.where, t));
  if (query.countAs !== undefined) return { items: [{ [query.countAs]: matching.length }] };
  const offset = continuation ? decodeToken(text, continuation) : 0;
  const items = matching.slice(offset, offset + pageSize);
  const next = offset + items.length;
  return next < matching.length ? { items, continuation: encodeToken(text, next) } : { items };
}
