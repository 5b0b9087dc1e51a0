/**
 * `POST /devices/query` with `{"query": "..."}`; paging through `x-ms-max-item-count` and
 * `x-ms-continuation` (the response header is present only while more pages remain: the SDK's
 * `hasMoreResults` is `token !== undefined`). Every page counts against the query throttle.
 */
import { hubErrors } from "../errors.ts";
import { parseQuery } from "../query/parse.ts";
import { DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, runQuery } from "../query/run.ts";
import { isJsonObject } from "../state/json.ts";
import { type Route, route } from "./router.ts";

function header(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

export const queryRoutes: Route[] = [
  route("POST", "/devices/query", (ctx, req) => {
    if (!isJsonObject(req.body) || typeof req.body.query !== "string")
      throw hubErrors.badRequest('the body must be {"query": "<SQL>"}');
    const text = req.body.query;
    const parsed = parseQuery(text);
    const sizeHeader = header(req.headers["x-ms-max-item-count"]);
    let pageSize = DEFAULT_PAGE_SIZE;
    if (sizeHeader !== undefined) {
      pageSize = Number(sizeHeader);
      if (!Number.isInteger(pageSize) || pageSize < 1)
        throw hubErrors.badRequest("x-ms-max-item-count must be a positive integer");
      pageSize = Math.min(pageSize, MAX_PAGE_SIZE);
    }
    ctx.queryThrottle.take();
    const page = runQuery(ctx.hub, text, parsed, pageSize, header(req.headers["x-ms-continuation"]));
    return {
      status: 200,
      body: page.items,
      headers: {
        "x-ms-item-type":
          parsed.countAs === undefined ? (parsed.source === "devices" ? "DeviceTwin" : "ModuleTwin") : "Raw",
        ...(page.continuation === undefined ? {} : { "x-ms-continuation": page.continuation }),
      },
    };
  }),
];
