/**
 * The site's local safety net: which targets the module may connect to, given by the device
 * owner in a file mounted from the device (`/etc/relay-listener/allowlist.txt`, see settings.ts).
 * The cloud cannot change it: neither the twin nor the deployment's environment feeds it. A
 * mapping whose target falls outside it is refused and reported.
 *
 * Entries (separated by `;`, `,` between ports only, whitespace or new lines; `#` starts a comment):
 *
 *   10.0.0.0/8:22,3389        a CIDR with ports        192.168.1.5:*        one address, any port
 *   [fd00::/8]:443            IPv6 in brackets         plc.plant.local:502  one host name
 *   *.plant.local:443,8000-8100  a DNS suffix, a port range   private       RFC 1918 + fc00::/7, any port
 *
 * Decisions (README of the module):
 * - Unset means deny all: the relay must never become an open door into the plant network by
 *   default. The module still runs and reports every mapping as `refused` with the reason.
 * - An IP target must fall in a CIDR entry with its port.
 * - A host-name target is resolved; it passes when its name matches a host entry with the port,
 *   or when every resolved address falls in a CIDR entry with the port. Either way the resolved
 *   addresses must also pass the built-in deny set, and the module connects to the address it
 *   checked (no second lookup an attacker controlling DNS could flip).
 * - Always denied, whatever the entries say: link-local (169.254/16 — the cloud metadata
 *   endpoint — and fe80::/10), unspecified, multicast and broadcast. Loopback only when a CIDR
 *   entry names it explicitly.
 */
import { lookup as dnsLookup } from "node:dns/promises";
import { isIP } from "node:net";
import ipaddr from "ipaddr.js";
import { RelayFleetError } from "../../../lib/errors.ts";

type Address = ipaddr.IPv4 | ipaddr.IPv6;

interface PortSet {
  any: boolean;
  ranges: Array<[number, number]>;
}

export type AllowRule =
  | { kind: "cidr"; network: Address; prefix: number; ports: PortSet; text: string }
  | { kind: "host"; host: string; ports: PortSet; text: string }
  | { kind: "suffix"; suffix: string; ports: PortSet; text: string };

export type TargetDecision =
  | { allowed: true; address: string; family: 4 | 6 }
  | { allowed: false; reason: string; unresolved?: boolean };

export type Lookup = (host: string) => Promise<Array<{ address: string; family: number }>>;

/** A resolver that does not answer must not stall a reconcile or a connection. */
const LOOKUP_TIMEOUT_MS = 3_000;

const defaultLookup: Lookup = (host) => {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(Object.assign(new Error("lookup timed out"), { code: "ETIMEOUT" })),
      LOOKUP_TIMEOUT_MS,
    );
  });
  return Promise.race([dnsLookup(host, { all: true, verbatim: true }), timeout]).finally(() =>
    clearTimeout(timer),
  );
};

const PRIVATE_CIDRS = ["10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "fc00::/7"];
const ALWAYS_DENIED = new Set(["linkLocal", "unspecified", "multicast", "broadcast", "reserved"]);

function badEntry(entry: string, why: string): RelayFleetError {
  return new RelayFleetError("RF_ERR_ALLOWLIST_ENTRY", `allowlist entry '${entry}': ${why}`);
}

function parsePorts(entry: string, text: string | undefined): PortSet {
  if (text === undefined || text === "*" || text === "") return { any: true, ranges: [] };
  const ranges: Array<[number, number]> = [];
  for (const part of text.split(",")) {
    const m = /^(\d{1,5})(?:-(\d{1,5}))?$/.exec(part.trim());
    if (!m) throw badEntry(entry, `'${part}' is not a port or range`);
    const lo = Number(m[1]);
    const hi = m[2] === undefined ? lo : Number(m[2]);
    if (lo < 1 || hi > 65535 || lo > hi) throw badEntry(entry, `port range ${part} is outside 1-65535`);
    ranges.push([lo, hi]);
  }
  return { any: false, ranges };
}

function portAllowed(ports: PortSet, port: number): boolean {
  return ports.any || ports.ranges.some(([lo, hi]) => port >= lo && port <= hi);
}

/** Splits `host[:ports]`, where host may be `[v6]` or `[v6/len]`. */
function splitEntry(entry: string): { host: string; ports: string | undefined } {
  if (entry.startsWith("[")) {
    const end = entry.indexOf("]");
    if (end < 0) throw badEntry(entry, "missing ']'");
    const rest = entry.slice(end + 1);
    if (rest !== "" && !rest.startsWith(":")) throw badEntry(entry, "expected ':' after ']'");
    return { host: entry.slice(1, end), ports: rest === "" ? undefined : rest.slice(1) };
  }
  const idx = entry.indexOf(":");
  return idx < 0
    ? { host: entry, ports: undefined }
    : { host: entry.slice(0, idx), ports: entry.slice(idx + 1) };
}

function parseEntry(entry: string): AllowRule[] {
  if (entry === "private") {
    return PRIVATE_CIDRS.map((c) => parseEntry(c.includes(":") ? `[${c}]` : c)[0]!);
  }
  const { host, ports: portText } = splitEntry(entry);
  const ports = parsePorts(entry, portText);
  if (host.includes("/") || ipaddr.isValid(host)) {
    let network: Address;
    let prefix: number;
    try {
      [network, prefix] = host.includes("/") ? ipaddr.parseCIDR(host) : [ipaddr.parse(host), -1];
    } catch {
      throw badEntry(entry, "not a valid CIDR");
    }
    if (prefix < 0) prefix = network.kind() === "ipv4" ? 32 : 128;
    return [{ kind: "cidr", network, prefix, ports, text: entry }];
  }
  const name = host.toLowerCase().replace(/\.$/, "");
  if (name.startsWith("*.")) {
    const suffix = name.slice(1);
    if (!/^(\.[a-z0-9-]{1,63})+$/.test(suffix)) throw badEntry(entry, "not a DNS suffix");
    return [{ kind: "suffix", suffix, ports, text: entry }];
  }
  if (!/^[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*$/.test(name)) {
    throw badEntry(entry, "not an address, CIDR or host name");
  }
  return [{ kind: "host", host: name, ports, text: entry }];
}

/** Parses allowlist text (environment value or file content). Throws `RF_ERR_ALLOWLIST_ENTRY`. */
export function parseAllowlist(text: string): AllowRule[] {
  const rules: AllowRule[] = [];
  for (const line of text.split(/\r?\n/)) {
    const content = line.replace(/#.*$/, "");
    for (const entry of content.split(/[;\s]+/)) if (entry !== "") rules.push(...parseEntry(entry));
  }
  return rules;
}

function normalise(address: string): Address | undefined {
  if (!ipaddr.isValid(address)) return undefined;
  return ipaddr.process(address);
}

/** The checked list. `rules === undefined` means nothing was configured: deny all. */
export class Allowlist {
  constructor(
    readonly rules: AllowRule[] | undefined,
    private readonly lookup: Lookup = defaultLookup,
  ) {}

  /** Human summary for logs and getStatus (entries only; nothing secret). */
  describe(): string {
    if (this.rules === undefined) return "unset (deny all)";
    return this.rules.map((r) => r.text).join("; ") || "empty (deny all)";
  }

  private addressAllowed(addr: Address, port: number): boolean {
    const range = addr.range();
    if (ALWAYS_DENIED.has(range)) return false;
    return (this.rules ?? []).some((rule) => {
      if (rule.kind !== "cidr" || !portAllowed(rule.ports, port)) return false;
      if (rule.network.kind() !== addr.kind()) return false;
      if (range === "loopback" && rule.network.range() !== "loopback") return false;
      return addr.match(rule.network, rule.prefix);
    });
  }

  private nameAllowed(name: string, port: number): boolean {
    const host = name.toLowerCase().replace(/\.$/, "");
    return (this.rules ?? []).some(
      (rule) =>
        portAllowed(rule.ports, port) &&
        ((rule.kind === "host" && rule.host === host) ||
          (rule.kind === "suffix" && host.endsWith(rule.suffix))),
    );
  }

  /**
   * Decides whether `host:port` may be connected to, resolving a name. On `allowed`, `address`
   * is what to connect to. Never throws.
   */
  async check(host: string, port: number): Promise<TargetDecision> {
    if (this.rules === undefined || this.rules.length === 0) {
      return {
        allowed: false,
        reason: "no local allowlist on the device (allowlist file absent or empty): deny all",
      };
    }
    if (isIP(host)) {
      const addr = normalise(host);
      if (!addr || !this.addressAllowed(addr, port)) {
        return { allowed: false, reason: `target ${host}:${port} is outside the local allowlist` };
      }
      return { allowed: true, address: addr.toString(), family: addr.kind() === "ipv4" ? 4 : 6 };
    }
    let resolved: Array<{ address: string; family: number }>;
    try {
      resolved = await this.lookup(host);
    } catch (err) {
      const code = (err as { code?: string }).code ?? "lookup failed";
      return { allowed: false, reason: `cannot resolve ${host}: ${code}`, unresolved: true };
    }
    if (resolved.length === 0) return { allowed: false, reason: `cannot resolve ${host}`, unresolved: true };
    const byName = this.nameAllowed(host, port);
    for (const r of resolved) {
      const addr = normalise(r.address);
      if (!addr) return { allowed: false, reason: `${host} resolved to an invalid address` };
      const denied =
        ALWAYS_DENIED.has(addr.range()) || (addr.range() === "loopback" && !this.addressAllowed(addr, port));
      if (denied || (!byName && !this.addressAllowed(addr, port))) {
        return {
          allowed: false,
          reason: `target ${host}:${port} (resolves to ${addr.toString()}) is outside the local allowlist`,
        };
      }
    }
    const first = normalise(resolved[0]!.address)!;
    return { allowed: true, address: first.toString(), family: first.kind() === "ipv4" ? 4 : 6 };
  }
}

/** Builds the allowlist from the text of the device's allowlist file (undefined: no file, deny all). */
export function allowlistFrom(fileText: string | undefined, lookup?: Lookup): Allowlist {
  if (fileText === undefined) return new Allowlist(undefined, lookup);
  return new Allowlist(parseAllowlist(fileText), lookup);
}
